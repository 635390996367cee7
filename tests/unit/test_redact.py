"""`wfc.runtime.redact`: which values are masked, which are left alone, and the log filter."""

from __future__ import annotations

import io
import json
import logging

import pytest

from wfc.cli.logs import JsonFormatter, TextFormatter
from wfc.runtime.redact import (
    MASK,
    RedactingFilter,
    is_secret_name,
    redact,
    redact_data,
    secret_values,
)

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No secret the machine running the tests happens to have set gets in the way."""
    import os

    for name in list(os.environ):
        if is_secret_name(name):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "MY_SERVICE_API_KEY",
        "GITHUB_TOKEN",
        "WEBHOOK_SECRET",
        "DB_PASSWORD",
        "PGPASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "openai_api_key",
    ],
)
def test_a_secret_variable_s_value_is_masked(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, KEY)
    assert redact(f"401 for key {KEY!r}, again: {KEY}") == f"401 for key '{MASK}', again: {MASK}"


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "TOKENIZERS_PARALLELISM", "PWD", "KEYBOARD", "USER_NAME"]
)
def test_other_variables_are_not_secrets(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "some-long-value")
    assert redact("the value some-long-value") == "the value some-long-value"


def test_short_values_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEV_TOKEN", "dev12")  # 5 characters: masking it would garble text
    monkeypatch.setenv("APP_SECRET", "abcdef")  # 6: long enough
    assert redact("dev12 and abcdef") == f"dev12 and {MASK}"


def test_the_provider_keys_the_ai_helper_reads_are_all_covered() -> None:
    secrets = pytest.importorskip("wfc.runtime.ai.secrets")
    assert secrets.KEY_VARIABLES
    assert [name for name in secrets.KEY_VARIABLES if not is_secret_name(name)] == []


def test_a_secret_containing_another_is_masked_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_TOKEN", "abcdefgh")
    monkeypatch.setenv("LONG_TOKEN", "abcdefgh-ijklmnop")
    assert redact("x abcdefgh-ijklmnop y") == f"x {MASK} y"


def test_the_environment_is_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact(KEY) == KEY
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert redact(KEY) == MASK
    monkeypatch.setenv("OPENAI_API_KEY", "another-key-value")
    assert redact(KEY) == KEY
    assert secret_values() == ("another-key-value",)


def test_an_explicit_environment_is_used_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert redact(KEY, {"X_TOKEN": "zzzzzzzz"}) == KEY
    assert redact("zzzzzzzz", {"X_TOKEN": "zzzzzzzz"}) == MASK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "connect to postgresql+asyncpg://app:hunter2@db:5432/wfc failed",
            "connect to postgresql+asyncpg://app:***@db:5432/wfc failed",
        ),
        ("redis://:pw@cache/0", "redis://:***@cache/0"),
        ("https://user:p%40ss@example.com/x", "https://user:***@example.com/x"),
        ("two: a://u:1@h b://v:2@k", "two: a://u:***@h b://v:***@k"),
        ("no password: https://user@example.com/x", "no password: https://user@example.com/x"),
        ("a port: https://example.com:8443/x", "a port: https://example.com:8443/x"),
        ("not a url: user:pass@host", "not a url: user:pass@host"),
    ],
)
def test_url_passwords_are_masked_whatever_their_length(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_json_data_is_redacted_keys_and_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    data = {"key": KEY, KEY: [1, KEY, {"url": "s://u:pw@h"}], "n": 3, "none": None}
    assert redact_data(data) == {
        "key": MASK,
        MASK: [1, MASK, {"url": f"s://u:{MASK}@h"}],
        "n": 3,
        "none": None,
    }


def _logged(formatter: logging.Formatter, log: logging.Logger) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    child = log.getChild("worker")  # records of a child reach the handler through propagation
    child.info("job failed: %s", f"bad key {KEY}", extra={"error": KEY, "n": 1, "items": [KEY]})
    try:
        raise ValueError(f"bad key {KEY}")
    except ValueError:
        child.exception("job %s raised", "j1")
    return stream.getvalue()


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_the_log_filter_redacts_messages_extras_and_tracebacks(
    monkeypatch: pytest.MonkeyPatch, formatter: logging.Formatter
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    output = _logged(formatter, logging.getLogger("wfc.test_redact"))
    assert KEY not in output
    assert output.count(MASK) >= 4
    assert "Traceback" in output and "ValueError" in output
    if isinstance(formatter, JsonFormatter):
        first = json.loads(output.splitlines()[0])
        assert first["msg"] == f"job failed: bad key {MASK}"
        assert first["error"] == MASK and first["n"] == 1 and first["items"] == [MASK]


def test_the_cli_log_setup_installs_the_filter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from wfc.cli.logs import configure

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    root = logging.getLogger("wfc")
    saved = (root.handlers[:], root.level, root.propagate)
    try:
        configure("json")
        logging.getLogger("wfc.worker").warning("stage error: %s", KEY)
    finally:
        root.handlers[:], root.level, root.propagate = saved
    err = capsys.readouterr().err
    assert "stage error: ***" in err and KEY not in err
