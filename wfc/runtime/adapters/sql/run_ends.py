"""Run ends told across processes (`ports.RunEnds`): NOTIFY on PostgreSQL, the file on SQLite.

A process that waits for a run another process drives (an API whose workers run
elsewhere, `wfc runs watch`) saw its end at its next poll. On PostgreSQL a trigger
sends `NOTIFY wfc_run_ended, '<run id>'` when a run's status becomes COMPLETED,
FAILED or CANCELLED: one notification per run, at its last commit, not one per stage
(a NOTIFY makes its commit take a lock every notifying commit of the database shares).
It is a channel of its own: the workers listening on `wfc_work` are not woken by it.

On SQLite a change of `PRAGMA data_version` says that another connection committed,
not what: every waiter re-reads its run. The rule of `sqlite_wakeups.WakeRule` decides
which changes count: one another process made for certain, at once, and one this
process's own writes may have made, at most every `WAKE_GAP` (the runs its own kernel
ends are told in the process already: `Deps.run_end_listeners`); and waiters are woken
at most once per `WAKE_GAP` in all (`Spaced`), the first change after a quiet spell at
once.

One `listen` serves every waiter of a storage (`wfc.runtime.run_end_waits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import DDL, Table, event
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.sqlite_wakeups import WAKE_GAP, WakeRule, data_version
from wfc.runtime.adapters.sql.sqlite_writes import WRITES

CHANNEL = "wfc_run_ended"

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION wfc_notify_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wfc_run_ended', NEW.id);
  RETURN NULL;
END $$
"""

TRIGGER = (
    "CREATE TRIGGER wfc_runs_ended AFTER UPDATE OF status ON runs FOR EACH ROW "
    "WHEN (NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED') "
    "AND OLD.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')) "
    "EXECUTE FUNCTION wfc_notify_run_ended()"
)


def _postgres_only(statement: str) -> DDL:
    return DDL(statement).execute_if(dialect="postgresql")  # type: ignore[no-untyped-call]


def install_on_create(runs: Table) -> None:
    """Create the trigger whenever `metadata.create_all` creates `runs` on PostgreSQL."""
    event.listen(runs, "after_create", _postgres_only(NOTIFY_FUNCTION))
    event.listen(runs, "after_create", _postgres_only(TRIGGER))


WATCH_EVERY = 0.005
"""Seconds between two looks at a SQLite file's `data_version` while someone waits for a
run (a look is a few microseconds; a worker's watcher, always on, looks every 20 ms)."""


class PostgresRunEnds:
    """`listen(on_end)` holds one pooled connection that LISTENs on `wfc_run_ended`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def listen(self, on_end: Callable[[str | None], None]) -> AsyncIterator[Awaitable[None]]:
        def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            on_end(payload)

        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def terminated(_driver: Any) -> None:
            if not lost.done():
                lost.set_result(None)

        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            driver.add_termination_listener(terminated)
            await driver.add_listener(CHANNEL, deliver)
            try:
                yield lost
            finally:
                driver.remove_termination_listener(terminated)
                if driver.is_closed():  # lost: not back into the pool, where it breaks a query
                    await conn.invalidate()
                else:
                    await driver.remove_listener(CHANNEL, deliver)


class SqliteRunEnds:
    """`listen(on_end)` watches one SQLite file's `data_version`; each change that may be
    another process's calls `on_end(None)`."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @contextlib.asynccontextmanager
    async def listen(self, on_end: Callable[[str | None], None]) -> AsyncIterator[Awaitable[None]]:
        # Read-only, and only if the file is there: never the one that creates it.
        watcher = sqlite3.connect(
            f"file:{self._path}?mode=ro", uri=True, isolation_level=None, timeout=0
        )
        task = asyncio.create_task(_watch(watcher, on_end), name="wfc-sqlite-run-ends")
        try:
            yield asyncio.get_running_loop().create_future()  # a file watched is never lost
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            watcher.close()


def _nothing_new() -> bool:
    return False


class Spaced:
    """Wakes at most one per `gap` seconds: the first change after a quiet spell at once,
    later ones gathered into one wake when `gap` has passed since the last. A change on
    SQLite does not say which run moved, so each wake makes every waiter read its run: a
    file other processes commit to hundreds of times a second would otherwise make them
    read it every look (5 ms), four times as often as their own poll did."""

    def __init__(self, gap: float) -> None:
        self._gap = gap
        self._last = -math.inf
        self._pending = False

    def due(self, changed: bool, now: float) -> bool:
        """Whether to wake now, told whether the file changed since the last look."""
        self._pending = self._pending or changed
        if not self._pending or now - self._last < self._gap:
            return False
        self._pending, self._last = False, now
        return True


async def _watch(watcher: sqlite3.Connection, on_end: Callable[[str | None], None]) -> None:
    rule = WakeRule(data_version(watcher), WRITES.ended)
    spaced = Spaced(WAKE_GAP)
    while True:
        await asyncio.sleep(WATCH_EVERY)
        now = time.monotonic()
        changed = bool(rule.look(data_version(watcher), WRITES.ended, now, _nothing_new))
        if spaced.due(changed, now):
            on_end(None)
