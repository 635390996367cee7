"""A `wfc worker` whose database goes away for good backs off, logs a line now and then
instead of a traceback each time, and exits 3 with one line after --give-up-after."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import create_database, drop_database
from tests.e2e.workers import counted_package, environment, start_worker, stop, wait_until, wfc

EXIT_GAVE_UP = 3


def _wait_serving(worker: subprocess.Popen[str], log: Path) -> None:
    def serving() -> bool:
        assert worker.poll() is None, f"the worker exited: {log.read_text()[-3000:]}"
        return '"serving"' in log.read_text()

    wait_until(serving, 30, "the worker to serve")


def _assert_gave_up_quietly(log: Path, code: int, why: str) -> None:
    text = log.read_text()
    assert code == EXIT_GAVE_UP, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith("wfc worker: gave up: ") and why in last, last
    assert text.count('"database unavailable') <= 2, text[-3000:]  # not one per failure
    # At most one record with a traceback, for the unexpected (one record may hold several
    # "Traceback" headers: a chained exception prints each link's).
    traced = [line for line in text.splitlines() if "Traceback" in line]
    assert len(traced) <= 1, text[-3000:]


def test_a_worker_whose_sqlite_file_is_deleted_exits(tmp_path: Path) -> None:
    package = counted_package(tmp_path)
    env = environment("", tmp_path / "ledger")
    env.pop("WFC_DATABASE_URL")  # the embedded default, .wfc/wfc.db, migrated on first use
    log = tmp_path / "worker.log"
    worker = start_worker(package, env, tmp_path, log, "--give-up-after", "1")
    try:
        _wait_serving(worker, log)
        (tmp_path / ".wfc" / "wfc.db").unlink()
        code = worker.wait(20)
    finally:
        stop(worker)  # only if it still runs (the test then fails)
    _assert_gave_up_quietly(log, code, "was deleted")


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway PostgreSQL database migrated by `wfc db upgrade` (the test drops it)."""
    url = asyncio.run(create_database(empty=True))
    try:
        migrated = wfc(
            "db", "upgrade", "--url", url, env=environment(url, tmp_path / "l"), cwd=tmp_path
        )
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        asyncio.run(drop_database(url))


def test_a_worker_whose_postgres_database_is_dropped_exits(tmp_path: Path, pg_url: str) -> None:
    package = counted_package(tmp_path)
    log = tmp_path / "worker.log"
    env = environment(pg_url, tmp_path / "ledger")
    worker = start_worker(package, env, tmp_path, log, "--give-up-after", "1")
    try:
        _wait_serving(worker, log)
        asyncio.run(drop_database(pg_url))
        code = worker.wait(30)
    finally:
        stop(worker)
    _assert_gave_up_quietly(log, code, "does not exist")
