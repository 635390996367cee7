"""Wakeups across processes on SQLite: `PRAGMA data_version`, looked at every few ms.

SQLite has no LISTEN/NOTIFY, so a worker noticed a run created by another process
only at its next poll (200 ms in the benchmark, `--poll-interval` in `wfc worker`):
an isolated run waited that long before its first stage. `PRAGMA data_version`
answers, on one connection, whether any other connection has committed to the file
since that connection last asked; in WAL mode it reads the shared-memory index and
no page of the file, a few microseconds on the event loop's thread. A worker asks it
every `WATCH_EVERY` and, when the file changed, wakes its claims and idle slots, as a
NOTIFY does on PostgreSQL.

A change does not say what changed, and most changes a busy worker sees are its
own commits, made on its other connections: each wake costs a claim (if it leads)
and a dequeue per idle slot, so a worker is woken at most once per `WAKE_GAP`
(the first change after a quiet spell wakes it at once) — unless no write of its
own process ended since the last look (`sqlite_writes.WRITES`): then the change is
another process's and wakes the worker at once. A change that may be its own still
wakes an idle worker's claims at once when a run was created and one is PENDING, which
one read of the watcher's answers (`WakeRule`). Without these, a run created just after the worker
finished the one before waited out the gap its own last commits started: 56 ms from
creation to end for a seq3 run, one at a time, with one worker.

The claim lead (`ports.Listening`) is an exclusive `flock` on a file beside the
database (`<file>-lead`): the kernel drops it when its holder's process dies, as
PostgreSQL drops a session's advisory lock. Workers that do not lead keep polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from wfc.runtime.adapters.sql.sqlite_writes import WRITES

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lead, every worker polls
    fcntl = None  # type: ignore[assignment]

WATCH_EVERY = 0.02  # seconds between two looks at `data_version` (an idle worker: ~1% of a core)
WAKE_GAP = 0.05  # seconds: the least time between two wakes


class SqliteWakeups:
    """`listen(on_wake)` watches one SQLite file for commits made by other processes."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextlib.asynccontextmanager
    async def listen(self, on_wake: Callable[[str], None]) -> AsyncIterator[SqliteListening]:
        """Call `on_wake("runs")` and `on_wake("jobs")` when another process may have
        created a run or queued a job, until the block exits."""
        # Read-only, and only if the file is there: never the one that creates it.
        watcher = sqlite3.connect(
            f"file:{self._path}?mode=ro", uri=True, isolation_level=None, timeout=0
        )
        listening = SqliteListening(Path(f"{self._path}-lead"))
        task = asyncio.create_task(_watch(watcher, on_wake), name="wfc-sqlite-watch")
        try:
            yield listening
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            listening.close()
            watcher.close()


def data_version(watcher: sqlite3.Connection) -> int | None:
    """The watcher's `data_version`, or None if SQLite could not say (then: wake)."""
    try:
        return int(watcher.execute("PRAGMA data_version").fetchone()[0])
    except sqlite3.Error:
        return None


class WakeRule:
    """What a look at `data_version` wakes: nothing, the claims, or the claims and the
    job slots.

    - A change is another process's for certain when no write of this process ended
      since the last look (its writes' turns, `WRITES.ended`: `data_version` moves only
      for commits, and this process's commits end its turns). It wakes both at once.
    - A change that may be this process's own (or a look SQLite could not answer) wakes
      both once `WAKE_GAP` has passed since the last wake. Before that, if a run was
      created since the last look and a run is PENDING (`new_run_waiting`, asked only
      then), it sends `runs-pending`, which a worker with no job in hand takes as a wake
      of its claims: a run created just after its last run ended is claimed at the look
      that sees it, not a gap later. A busy worker ignores it: its outcomes claim the
      runs waiting in their own transactions, and a claim of its own each look would
      only contend with the processes creating them. Only a new run sends it, so a
      PENDING run this worker does not serve (another plan's) costs no claim per look.

    (A write whose turn ends just after its commit was seen may pass for another
    process's: one wake too many, never one too few.)"""

    __slots__ = ("own_writes", "pending", "seen", "woken_at")

    def __init__(self, version: int | None, own_writes: int) -> None:
        self.seen = version
        self.own_writes = own_writes
        self.woken_at = -WAKE_GAP
        self.pending = False  # a change not yet woken for

    def look(
        self,
        version: int | None,
        own_writes: int,
        now: float,
        new_run_waiting: Callable[[], bool],
    ) -> tuple[str, ...]:
        """Take in what a look found: the version (None: SQLite could not say), this
        process's writes ended so far, the monotonic time. What to wake now: `on_wake`'s
        arguments, in order."""
        changed = version is None or version != self.seen
        others = changed and version is not None and own_writes == self.own_writes
        self.seen, self.own_writes = version, own_writes
        if changed:
            self.pending = True
        if self.pending and (others or now - self.woken_at >= WAKE_GAP):
            self.pending, self.woken_at = False, now
            return _BOTH
        if changed and new_run_waiting():
            return _RUNS
        return ()


_BOTH = ("runs", "jobs")
_RUNS = ("runs-pending",)
# The newest run's rowid (the rightmost entry of the table: no scan), and whether a run is
# PENDING (the claim's own index holds PENDING runs only: `ix_runs_status_claim_order`).
_NEWEST_AND_PENDING = (
    "SELECT (SELECT max(rowid) FROM runs), EXISTS (SELECT 1 FROM runs WHERE status = 'PENDING')"
)


class NewRunWaiting:
    """Whether a run was created since the last time it was asked, and a run is PENDING,
    read on the watcher's connection. False when SQLite could not say: the gap's wake
    comes anyway."""

    __slots__ = ("newest", "watcher")

    def __init__(self, watcher: sqlite3.Connection) -> None:
        self.watcher = watcher
        self.newest: int | None = None

    def __call__(self) -> bool:
        try:
            newest, pending = self.watcher.execute(_NEWEST_AND_PENDING).fetchone()
        except sqlite3.Error:
            return False
        created, self.newest = newest != self.newest, newest
        return created and bool(pending)


async def _watch(watcher: sqlite3.Connection, on_wake: Callable[[str], None]) -> None:
    rule = WakeRule(data_version(watcher), WRITES.ended)
    new_run_waiting = NewRunWaiting(watcher)
    new_run_waiting()  # the runs there now are not new
    while True:
        await asyncio.sleep(WATCH_EVERY)
        version = data_version(watcher)
        for what in rule.look(version, WRITES.ended, time.monotonic(), new_run_waiting):
            on_wake(what)


class SqliteListening:
    """The claim lead as an exclusive `flock` on `<database>-lead`."""

    def __init__(self, lead_file: Path) -> None:
        self._lead_file = lead_file
        self._fd: int | None = None
        self._lost = asyncio.Event()  # never set: the watcher has no connection to lose
        self.leading = False

    async def lead_claims(self) -> bool:
        if self.leading or fcntl is None:
            return self.leading
        if self._fd is None:
            self._fd = os.open(self._lead_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.leading = True
        return True

    async def pass_on_claims(self) -> None:
        """Let go of the lead; the others take it at their next poll."""
        if self.leading and self._fd is not None and fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.leading = False

    async def until_lost(self) -> None:
        await self._lost.wait()

    def close(self) -> None:
        self.leading = False
        if self._fd is not None:
            os.close(self._fd)  # (closing drops the flock)
            self._fd = None
