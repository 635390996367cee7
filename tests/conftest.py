"""Shared fixtures: paths, the `--update-golden` switch, and compiling into tmp_path."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden" / "cases"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the processes the tests start, however the suite was started.

    A shell without job control starts a background command (`.ci/run &` from a
    script) with SIGINT ignored, and an ignored signal stays ignored across exec: the
    `wfc` processes that tests interrupt with SIGINT then never see it and the tests
    time out. A handler of Python's own is reset to the default in a child instead."""
    del config
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite expected golden files instead of comparing; review the diff",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the PostgreSQL template databases the session created."""
    import asyncio

    from tests.databases import drop_templates

    asyncio.run(drop_templates())
