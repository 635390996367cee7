"""Run ends told across processes (`ports.RunEnds`): NOTIFY on PostgreSQL, the file on SQLite.

A process that waits for a run another process drives (an API whose workers run
elsewhere, `wfc runs watch`) saw its end at its next poll. On PostgreSQL a trigger
sends `NOTIFY wfc_run_ended, '<run id>'` when a run's status becomes COMPLETED,
FAILED or CANCELLED: one notification per run, at its last commit, not one per stage
(a NOTIFY makes its commit take a lock every notifying commit of the database shares).
It is a channel of its own: the workers listening on `wfc_work` are not woken by it.

The trigger notifies only while some process listens: a NOTIFY cost an ending commit
about 470 µs (its commit takes a lock every notifying commit of the database shares), and
most fleets have no waiter. A listening connection registers itself in
`run_end_listeners` (its backend's pid) before it LISTENs, and the trigger reads whether
that table has a row (an empty table: a few µs). A row left by a process that died only
keeps notifications coming (never a wakeup lost); the next listener to start deletes the
rows of backends gone. An end whose trigger looked before a registration committed, and
which commits after it, is not notified: the listener waits for those transactions to
end (they hold a lock on `run_end_listeners` from their look to their commit) and then
says "runs may have moved" (`on_end(None)`), so its waiters read their runs again.

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
import logging
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

log = logging.getLogger("wfc.waits")

LISTENERS = "run_end_listeners"

LISTENERS_TABLE = """
CREATE TABLE run_end_listeners (
  pid integer PRIMARY KEY,
  listening_since timestamptz NOT NULL DEFAULT now()
)
"""
"""One row per connection that LISTENs on `wfc_run_ended` (PostgreSQL only: SQLite's
waiters watch the file). Not in `schema.metadata`: nothing but this module reads it."""

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION wfc_notify_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM run_end_listeners) THEN
    PERFORM pg_notify('wfc_run_ended', NEW.id);
  END IF;
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
    event.listen(runs, "after_create", _postgres_only(LISTENERS_TABLE))
    event.listen(runs, "after_create", _postgres_only(NOTIFY_FUNCTION))
    event.listen(runs, "after_create", _postgres_only(TRIGGER))


WATCH_EVERY = 0.005
"""Seconds between two looks at a SQLite file's `data_version` while someone waits for a
run (a look is a few microseconds; a worker's watcher, always on, looks every 20 ms)."""


REGISTER = (
    "DELETE FROM run_end_listeners WHERE pid NOT IN (SELECT pid FROM pg_stat_activity); "
    "INSERT INTO run_end_listeners (pid) VALUES (pg_backend_pid()) "
    "ON CONFLICT (pid) DO UPDATE SET listening_since = now()"
)
"""A listener's row, and no row of a backend gone (one statement list: one transaction).
By pid alone: `pg_stat_activity` shows every session's pid to every role, not its other
columns, and a live listener's row pruned would lose its wakeups."""

UNREGISTER = "DELETE FROM run_end_listeners WHERE pid = pg_backend_pid()"

_LOOKED_AT_LISTENERS = (
    "SELECT virtualtransaction FROM pg_locks "
    "WHERE locktype = 'relation' AND relation = 'run_end_listeners'::regclass "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND pid <> pg_backend_pid()"
)
IN_FLIGHT = _LOOKED_AT_LISTENERS
"""The transactions that looked at `run_end_listeners` and have not ended: each holds the
lock its look took until it commits (`pg_locks` shows it to every role)."""

STILL_IN_FLIGHT = f"SELECT EXISTS ({_LOOKED_AT_LISTENERS} AND virtualtransaction = ANY($1))"

FIRST_PAUSE = 0.005
LAST_PAUSE = 1.0
"""Seconds between two looks at whether the transactions in flight at a registration have
ended: from 5 ms (a kernel's transaction), doubling to 1 s (a long one: waiters poll)."""


class PostgresRunEnds:
    """`listen(on_end)` holds one pooled connection that LISTENs on `wfc_run_ended`,
    registered in `run_end_listeners` for as long as it does."""

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
            # In this order: an end whose trigger looks after the registration commits is
            # notified; one that looked before and is still in flight is waited out.
            await driver.execute(REGISTER)
            in_flight = [row[0] for row in await driver.fetch(IN_FLIGHT)]
            await driver.add_listener(CHANNEL, deliver)
            waited = None
            if in_flight:
                waited = asyncio.create_task(
                    _wake_when_ended(driver, in_flight, on_end), name="wfc-run-ends-in-flight"
                )
            try:
                yield lost
            finally:
                if waited is not None:
                    waited.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waited
                driver.remove_termination_listener(terminated)
                if driver.is_closed():  # lost: not back into the pool, where it breaks a query
                    await conn.invalidate()
                else:
                    await driver.remove_listener(CHANNEL, deliver)
                    await driver.execute(UNREGISTER)


async def _wake_when_ended(
    driver: Any, in_flight: list[str], on_end: Callable[[str | None], None]
) -> None:
    """`on_end(None)` once the transactions `in_flight` at the registration have ended:
    one of them may have ended a run, unnotified, after its waiters last read it."""
    pause = FIRST_PAUSE
    try:
        while await driver.fetchval(STILL_IN_FLIGHT, in_flight):
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_PAUSE)
    except asyncio.CancelledError:
        raise
    except Exception:  # the connection lost (told by `lost`) or a query refused: wake anyway
        log.warning("waiting out run ends in flight failed; waking every waiter", exc_info=True)
    on_end(None)


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
