"""`DatabaseHealth`: how a worker behaves while its database is away.

A worker's loops (leasing, claiming, the maintenance tick, the LISTEN
connection) each retried a failed database call on their own schedule and logged
a traceback every time: with the database gone for good (dropped, its server
decommissioned, its SQLite file deleted) a worker wrote several tracebacks a
second, for ever. Now every failure goes through one `DatabaseHealth`, which
answers how long to wait (exponential, capped, shared by the loops), logs one
line per `LOG_EVERY` rather than one per failure, and after `give_up_after` of
unbroken failure tells the worker to give up, so its supervisor sees a clear exit
instead of a process that only logs.

An embedded SQLite file can go away without any call failing: SQLite keeps
writing to a file that was deleted (or replaced) under it, and nobody will ever
read what it writes. `check_file` compares the path's inode with the one the
worker started on, and a difference counts as the database being away.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from wfc.runtime.transient import is_transient

log = logging.getLogger("wfc.worker")

BACKOFF_FIRST = 0.5  # seconds
BACKOFF_CAP = 30.0
LOG_EVERY = 30.0  # seconds between the lines saying the database is still away


class DatabaseFileGoneError(OSError):
    """The SQLite file the worker opened was deleted or replaced under it."""


@dataclass(frozen=True, slots=True)
class _FileIdentity:
    device: int
    inode: int


def _identity(path: Path) -> _FileIdentity | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return _FileIdentity(st.st_dev, st.st_ino)


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error) or type(error).__name__
    return f"{type(error).__name__}: {text.splitlines()[0]}"


class DatabaseHealth:
    """Failures of a worker's database calls: the backoff, the log lines and giving up."""

    def __init__(
        self,
        *,
        give_up_after: timedelta | None,
        on_give_up: Callable[[str], None],
        database_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.give_up_after = give_up_after if give_up_after else None  # 0: never
        self._on_give_up = on_give_up
        self._clock = clock
        self._file = database_file
        self._file_identity = _identity(database_file) if database_file is not None else None
        self.down_since: float | None = None
        self._failures = 0
        self._next_log = 0.0
        self._traced = False

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def check_file(self) -> DatabaseFileGoneError | None:
        """The SQLite file's problem, if it was deleted or replaced since the worker opened
        it (each call `stat`s the path: cheap beside a statement); None when it is as it was."""
        if self._file is None or self._file_identity is None:
            return None
        now = _identity(self._file)
        if now == self._file_identity:
            return None
        what = "deleted" if now is None else "replaced by another file"
        return DatabaseFileGoneError(f"the database file {self._file} was {what}")

    def failed(self, where: str, error: BaseException) -> float:
        """Note a failed database call; the seconds the caller should wait before its next."""
        now = self._clock()
        if self.down_since is None:
            self.down_since, self._failures, self._next_log = now, 0, now
        self._failures += 1
        delay = min(BACKOFF_CAP, BACKOFF_FIRST * (1 << min(self._failures - 1, 16)))
        away = now - self.down_since
        if now >= self._next_log:
            self._next_log = now + LOG_EVERY
            limit = (
                f"giving up after {self.give_up_after.total_seconds():g}s"
                if self.give_up_after is not None
                else "never giving up"
            )
            unexpected = not is_transient(error) and not self._traced
            self._traced = self._traced or unexpected
            log.warning(
                "database unavailable for %.0fs (%s: %s); retrying with backoff, %s",
                away,
                where,
                _one_line(error),
                limit,
                exc_info=error if unexpected else None,  # one traceback, for what is not an outage
                extra={"where": where, "down_for_s": round(away, 1)},
            )
        if self.give_up_after is not None and away >= self.give_up_after.total_seconds():
            self._on_give_up(
                f"the database was unavailable for {away:.0f}s "
                f"(--give-up-after {self.give_up_after.total_seconds():g}): {_one_line(error)}"
            )
        return delay

    def ok(self) -> None:
        """Note a database call that worked (a deleted SQLite file does not count as back)."""
        if self.down_since is None or self.check_file() is not None:
            return
        log.info(
            "database available again after %.0fs",
            self._clock() - self.down_since,
            extra={"down_for_s": round(self._clock() - self.down_since, 1)},
        )
        self.down_since = None
        self._failures = 0
        self._traced = False
