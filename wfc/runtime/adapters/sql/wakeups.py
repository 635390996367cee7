"""Wakeups across processes on PostgreSQL: a trigger NOTIFYs, idle workers LISTEN.

A worker that finishes a stage enqueues the next group itself, but its peers
on other machines would only see that job at their next poll. Triggers on
`jobs` and `runs` send `NOTIFY wfc_work, '<table>'` when a job becomes due now
(inserted or released back to PENDING — not one queued already leased to the
worker that queued it) or a run is created; notifications are
delivered at commit and cost the writer no extra round trip. SQLite has no
such channel: there, workers fall back to polling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import DDL, Table, event
from sqlalchemy.ext.asyncio import AsyncEngine

CHANNEL = "wfc_work"

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION wfc_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wfc_work', TG_TABLE_NAME);
  RETURN NULL;
END $$
"""

TRIGGERS: dict[str, tuple[str, ...]] = {
    "runs": (
        "CREATE TRIGGER wfc_runs_created AFTER INSERT ON runs "
        "FOR EACH STATEMENT EXECUTE FUNCTION wfc_notify_work()",
    ),
    "jobs": (
        # Per PENDING row: a job queued already leased to its worker (wfc.runtime.handoff)
        # must not wake the others to race for it.
        "CREATE TRIGGER wfc_jobs_enqueued AFTER INSERT ON jobs FOR EACH ROW "
        "WHEN (NEW.status = 'PENDING') EXECUTE FUNCTION wfc_notify_work()",
        "CREATE TRIGGER wfc_jobs_released AFTER UPDATE OF status ON jobs FOR EACH ROW "
        "WHEN (NEW.status = 'PENDING' AND OLD.status <> 'PENDING' AND NEW.run_at IS NULL) "
        "EXECUTE FUNCTION wfc_notify_work()",
    ),
}


def _postgres_only(statement: str) -> DDL:
    return DDL(statement).execute_if(dialect="postgresql")  # type: ignore[no-untyped-call]


def install_on_create(runs: Table, jobs: Table) -> None:
    """Create the triggers whenever `metadata.create_all` creates these tables on PostgreSQL."""
    event.listen(runs, "after_create", _postgres_only(NOTIFY_FUNCTION))
    for table in (runs, jobs):
        for statement in TRIGGERS[table.name]:
            event.listen(table, "after_create", _postgres_only(statement))


class PostgresWakeups:
    """`listen(on_wake)` holds one pooled connection that LISTENs on `wfc_work`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def listen(self, on_wake: Callable[[str], None]) -> AsyncIterator[None]:
        """Call `on_wake("jobs" | "runs")` for each notification until the block exits."""

        def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            on_wake(payload)

        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.add_listener(CHANNEL, deliver)
            try:
                yield
            finally:
                await driver.remove_listener(CHANNEL, deliver)
