"""What a user types never ends in a traceback: each bad value is one `Error:` line and the
right exit code (2: bad input, nothing created; 1: the database or directory refused).

Most cases run the CLI in process (`CliRunner`, whose `exception` is the traceback a shell
would print); the `wfc run` ones run a real process, as a user would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import EXAMPLES
from tests.e2e.workers import environment, wfc
from wfc.cli import cli

PACKAGE = EXAMPLES / "documents" / "document_processor"
DOC = '{"document": "Great product."}'
CREATE = ("runs", "create", "document_processor", "--plan", str(PACKAGE))


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory of its own, with no WFC_DATABASE_URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WFC_DATABASE_URL", raising=False)
    yield tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def refused(result: Result, code: int, says: str) -> None:
    """Exit `code`, no traceback, and one `Error:` line holding `says`."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0], result.output


def no_runs() -> bool:
    """The working directory's database holds no run, or was never created."""
    listed = invoke("runs", "list", "--json")
    if listed.exit_code == 1:
        return "no wfc database at" in listed.output
    return listed.exit_code == 0 and json.loads(listed.output) == []


# -- --config on `wfc run` and `wfc runs create` ------------------------------------------

BAD_CONFIGS = [
    pytest.param('{"nosuch": {}}', "nosuch: no such stage in this workflow", id="unknown stage"),
    pytest.param('{"keywords": {"nofield": 1}}', "keywords: nofield", id="unknown field"),
    pytest.param('{"keywords": {"top": "many"}}', "top: Input should be a valid", id="wrong type"),
    pytest.param('{"keywords": 5}', "stage 'keywords' must map to an object", id="not an object"),
]


@pytest.mark.parametrize(("config", "says"), BAD_CONFIGS)
def test_wfc_run_with_a_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, config: str, says: str
) -> None:
    env = environment("", tmp_path / "ledger")
    env.pop("WFC_DATABASE_URL")
    result = wfc("run", str(PACKAGE), "--input", DOC, "--config", config, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0], result.stderr


@pytest.mark.parametrize(("config", "says"), BAD_CONFIGS)
def test_runs_create_with_a_bad_config_is_one_line_and_exit_2(
    here: Path, config: str, says: str
) -> None:
    refused(invoke(*CREATE, "--input", DOC, "--config", config), 2, says)
    assert no_runs()


# -- JSON a user types --------------------------------------------------------------------


def _deep(levels: int) -> str:
    return '{"document": ' + "[" * levels + "]" * levels + "}"


def test_bad_json_values_are_one_line_and_exit_2(here: Path) -> None:
    (here / "latin1.json").write_bytes(b'{"document": "caf\xe9"}')
    (here / "deep.json").write_text(_deep(1000))
    cases = [
        (_deep(1000), "nested more than 64 levels deep"),
        ("@deep.json", "nested more than 64 levels deep"),
        ('{"document": ' + "7" * 5000 + "}", "a number too long to read"),
        ("@latin1.json", "latin1.json is not UTF-8 text (byte 0xe9"),
        ("@missing.json", "cannot read missing.json"),
        ("{oops", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
    ]
    for text, says in cases:
        refused(invoke(*CREATE, "--input", text), 2, says)
        refused(invoke(*CREATE, "--input", DOC, "--config", text), 2, says)
    assert not (here / ".wfc").exists()  # refused before the database was opened


@pytest.mark.parametrize("priority", [str(2**31), str(-(2**31) - 1), "9" * 40, "1e3", "x"])
def test_a_priority_out_of_range_or_not_a_number_is_exit_2(here: Path, priority: str) -> None:
    refused(invoke(*CREATE, "--input", DOC, "--priority", priority), 2, "--priority")


@pytest.mark.parametrize(
    ("key", "says"), [("", "an empty key"), ("  ", "an empty key"), ("k" * 201, "at most 200")]
)
def test_an_idempotency_key_no_database_stores_is_exit_2(here: Path, key: str, says: str) -> None:
    refused(invoke(*CREATE, "--input", DOC, "--idempotency-key", key), 2, says)


def test_values_no_database_stores_are_exit_2_on_sqlite_too(here: Path) -> None:
    """SQLite would store them; PostgreSQL would not: refused alike, before the database."""
    for text, says in (
        ('{"document": "a\\u0000b"}', "document: U+0000"),
        ('{"document": "a\\ud800b"}', "document: Input should be a valid string"),
    ):
        result = invoke(*CREATE, "--input", text)
        assert result.exit_code == 2 and says in result.output, result.output
        assert isinstance(result.exception, SystemExit)
    refused(invoke(*CREATE, "--input", DOC, "--config", '{"\\u0000": {}}'), 2, "no such stage")
    assert no_runs()


# -- the database option ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@h/db", "wfc cannot use a 'mysql' database"),
        ("oracle+cx://u@h/db", "wfc cannot use a 'oracle+cx' database"),
        ("postgresql+nosuchdriver://u@h/db", "wfc cannot use a 'postgresql+nosuchdriver'"),
        ("postgresql://u@h:port/db", "--db: not a database URL"),
        ("postgresql://u@h:99999999999/db", "--db: not a database URL"),
        ("sqlite:///wfc.db?synchronous=off", "synchronous='off': a SQLite URL takes"),
    ],
)
def test_a_database_url_wfc_cannot_use_is_one_line_and_exit_2(
    here: Path, url: str, says: str
) -> None:
    for args in (("runs", "list"), (*CREATE, "--input", DOC), ("db", "upgrade")):
        result = invoke(*args, "--db", url)
        refused(result, 2, says)
        assert "sqlite+aiosqlite:///" in result.output  # the forms wfc takes
    from_env = invoke("runs", "list", env={"WFC_DATABASE_URL": url})
    refused(from_env, 2, "WFC_DATABASE_URL")


def test_a_plain_path_is_a_sqlite_file(here: Path) -> None:
    created = invoke(*CREATE, "--input", DOC, "--db", "state/runs.db")
    assert created.exit_code == 0, created.output
    assert (here / "state" / "runs.db").is_file() and not (here / ".wfc").exists()
    listed = invoke("runs", "list", "--json", "--db", str(here / "state" / "runs.db"))
    assert [run["run_id"] for run in json.loads(listed.output)] == [created.output.strip()]


def test_a_working_directory_where_the_database_cannot_be_made_is_one_line(here: Path) -> None:
    (here / ".wfc").write_text("a file where the directory would go")
    if os.geteuid() != 0:  # root writes anywhere: a file in the way stands in for read-only
        here.chmod(0o555)
    try:
        refused(invoke(*CREATE, "--input", DOC), 1, "cannot create the database at")
        refused(invoke("db", "upgrade"), 1, "sqlite+aiosqlite:///.wfc/wfc.db")
        refused(invoke("runs", "list"), 1, "no wfc database at")
    finally:
        here.chmod(0o755)
