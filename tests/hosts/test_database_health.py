"""`DatabaseHealth`: backoff shared by a worker's loops, one log line per interval, giving up
after a while, and a SQLite file deleted or replaced counting as the database being away."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from wfc.runtime.hosts import health
from wfc.runtime.hosts.health import DatabaseHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lost() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def _health(clock: Clock, gave_up: list[str], **options: object) -> DatabaseHealth:
    return DatabaseHealth(
        give_up_after=options.get("give_up_after", timedelta(seconds=60)),  # type: ignore[arg-type]
        on_give_up=gave_up.append,
        database_file=options.get("database_file"),  # type: ignore[arg-type]
        clock=clock,
    )


def test_failures_back_off_exponentially_up_to_a_cap_and_log_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, gave_up = Clock(), list[str]()
    watch = _health(clock, gave_up, give_up_after=timedelta(hours=1))
    delays = []
    with caplog.at_level(logging.INFO, logger="wfc.worker"):
        for _ in range(12):
            delays.append(watch.failed("dequeue", _lost()))
            clock.now += 2.5  # 30 s in all
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0] and max(delays) == health.BACKOFF_CAP
    lines = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(lines) == 1  # the first failure; the next line is due LOG_EVERY later
    assert "connection refused" in lines[0].getMessage() and lines[0].exc_info is None
    clock.now += health.LOG_EVERY
    with caplog.at_level(logging.INFO, logger="wfc.worker"):
        watch.failed("claim", _lost())
        watch.ok()
    assert [r.getMessage().split(" (")[0] for r in caplog.records[-2:]] == [
        "database unavailable for 60s",
        "database available again after 60s",
    ]
    assert watch.failed("dequeue", _lost()) == 0.5  # a new outage starts from the first delay
    assert gave_up == []


def test_it_gives_up_once_the_database_was_away_for_give_up_after() -> None:
    clock, gave_up = Clock(), list[str]()
    watch = _health(clock, gave_up, give_up_after=timedelta(seconds=10))
    watch.failed("dequeue", _lost())
    clock.now += 9
    watch.failed("dequeue", _lost())
    assert gave_up == []
    clock.now += 1
    watch.failed("dequeue", _lost())
    assert len(gave_up) == 1
    assert "unavailable for 10s" in gave_up[0] and "connection refused" in gave_up[0]


def test_zero_means_never_give_up() -> None:
    clock, gave_up = Clock(), list[str]()
    watch = _health(clock, gave_up, give_up_after=timedelta(0))
    watch.failed("dequeue", _lost())
    clock.now += 10**6
    watch.failed("dequeue", _lost())
    assert gave_up == []


def test_a_sqlite_file_deleted_or_replaced_is_away_and_never_back(tmp_path: Path) -> None:
    clock, gave_up = Clock(), list[str]()
    db = tmp_path / "wfc.db"
    db.write_text("")
    watch = _health(clock, gave_up, database_file=db)
    assert watch.check_file() is None
    with db.open():  # as SQLite holds it: its inode stays taken after the unlink
        db.unlink()
        gone = watch.check_file()
        assert gone is not None and "was deleted" in str(gone)
        watch.failed("database file", gone)
        watch.ok()  # SQLite still answers, on a file nobody will read: not back
        assert watch.down
        db.write_text("")  # a new file at the same path is another database
        replaced = watch.check_file()
        assert replaced is not None and "replaced" in str(replaced)
