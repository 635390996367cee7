"""Numbers a user types that no database or `timedelta` holds are refused as usage errors.

Each of these once ended in a traceback (an `OverflowError` from SQLite's 64-bit integers
or from `timedelta`, a `ValueError` for `nan`), or, for `wfc worker`, in a worker that
logged "database unavailable" forever: now each is one `Error:` line and exit 2, before
anything is opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import EXAMPLES
from wfc.cli import cli

PACKAGE = str(EXAMPLES / "documents" / "document_processor")
HUGE = "99999999999999999999"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with a migrated database and no WFC_DATABASE_URL."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WFC_DATABASE_URL", raising=False)
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    yield tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def usage_error(result: Result, option: str) -> None:
    """Exit 2, no traceback, and the error names `option`."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error:" in result.output and option in result.output, result.output


WORKER = ("worker", "--plan", PACKAGE)

TOO_LARGE_INTEGERS = [
    pytest.param(("runs", "list", "--limit", HUGE), "--limit", id="runs list --limit"),
    pytest.param(
        ("runs", "prune", "--older-than", "1d", "--batch", HUGE), "--batch", id="prune --batch"
    ),
    pytest.param((*WORKER, "--concurrency", HUGE), "--concurrency", id="worker --concurrency"),
    pytest.param(("limits", "set", "some.key", HUGE), "BOUND", id="limits set BOUND"),
]


@pytest.mark.parametrize(("args", "option"), TOO_LARGE_INTEGERS)
def test_an_integer_no_database_stores_is_a_usage_error(
    here: Path, args: tuple[str, ...], option: str
) -> None:
    usage_error(invoke(*args), option)


def test_the_largest_integer_a_database_stores_still_works(here: Path) -> None:
    assert invoke("runs", "list", "--limit", str(2**63 - 1), "--json").exit_code == 0


NOT_SECONDS = [
    pytest.param(("run", PACKAGE, "--timeout", "nan"), "--timeout", id="run --timeout nan"),
    pytest.param(("run", PACKAGE, "--timeout", "inf"), "--timeout", id="run --timeout inf"),
    pytest.param(("run", PACKAGE, "--timeout", "1e308"), "--timeout", id="run --timeout 1e308"),
    pytest.param(("runs", "watch", "abcd", "--interval", "nan"), "--interval", id="watch nan"),
    pytest.param(("runs", "watch", "abcd", "--interval", "1e308"), "--interval", id="watch huge"),
    pytest.param(("runs", "logs", "abcd", "--interval", "nan"), "--interval", id="logs nan"),
    pytest.param((*WORKER, "--poll-interval", "nan"), "--poll-interval", id="poll-interval"),
    pytest.param((*WORKER, "--tick-interval", "inf"), "--tick-interval", id="tick-interval"),
    pytest.param((*WORKER, "--stale-lease", "1e308"), "--stale-lease", id="stale-lease"),
    pytest.param((*WORKER, "--heartbeat", "inf"), "--heartbeat", id="heartbeat"),
    pytest.param((*WORKER, "--grace", "nan"), "--grace", id="grace"),
    pytest.param(
        (*WORKER, "--default-stage-timeout", HUGE), "--default-stage-timeout", id="stage timeout"
    ),
    pytest.param((*WORKER, "--give-up-after", "1e400"), "--give-up-after", id="give-up-after"),
]


@pytest.mark.parametrize(("args", "option"), NOT_SECONDS)
def test_seconds_that_are_not_a_finite_duration_are_a_usage_error(
    here: Path, args: tuple[str, ...], option: str
) -> None:
    usage_error(invoke(*args), option)


TOO_OLD = [
    pytest.param(("runs", "prune", "--older-than", "999999999d"), "--older-than", id="prune d"),
    pytest.param(("runs", "prune", "--older-than", f"{HUGE}d"), "--older-than", id="prune int"),
    pytest.param(
        ("runs", "prune", "--older-than", "9" * 400 + "w"), "--older-than", id="400 digits"
    ),
    pytest.param(("runs", "prune", "--older-than", "1000000000000h"), "--older-than", id="hours"),
    pytest.param((*WORKER, "--retain", "999999999d"), "--retain", id="worker --retain"),
]


@pytest.mark.parametrize(("args", "option"), TOO_OLD)
def test_an_age_before_any_date_is_a_usage_error(
    here: Path, args: tuple[str, ...], option: str
) -> None:
    usage_error(invoke(*args), option)


def test_an_age_of_a_century_still_prunes_nothing(here: Path) -> None:
    result = invoke("runs", "prune", "--older-than", "36500d", "--json")
    assert result.exit_code == 0, result.output


def test_a_project_concurrency_no_database_stores_is_a_project_error(here: Path) -> None:
    """`[worker] concurrency` in wfc.toml is bounded as `--concurrency` is: the worker once
    started with it and logged "database unavailable" forever."""
    (here / "wfc.toml").write_text(f"[worker]\nconcurrency = {HUGE}\n", encoding="utf-8")
    result = invoke(*WORKER)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "concurrency must be a whole number" in result.output, result.output
