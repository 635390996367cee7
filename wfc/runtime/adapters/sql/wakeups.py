"""Wakeups across processes on PostgreSQL: a trigger NOTIFYs, idle workers LISTEN.

A worker that finishes a stage enqueues the next group itself, but its peers
on other machines would only see that job at their next poll. Triggers on
`jobs` and `runs` send `NOTIFY wfc_work, '<table>'` when a job becomes due now
(inserted or released back to PENDING — not one queued already leased to the
worker that queued it) or a run is created; notifications are
delivered at commit and cost the writer no extra round trip. SQLite has no
such channel: there, workers fall back to polling.

A created run wakes every listener, but only the claim lead claims it (a
session advisory lock on the LISTEN connection: `wfc.runtime.ports.Listening`),
so a run costs one claim however many workers listen, not one per worker, all
but one of them finding nothing.
"""

from __future__ import annotations

import asyncio
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


# The session advisory lock the claim lead holds (any constant: advisory locks are per
# database, and nothing else in wfc takes one).
CLAIM_LEAD_LOCK = 0x77_66_63_C1_A1_4D  # "wfc", "claim"

_LEAD = "SELECT pg_try_advisory_lock($1)"
_PASS_ON = f"SELECT pg_advisory_unlock($1), pg_notify('{CHANNEL}', 'runs-waiting')"


class PostgresWakeups:
    """`listen(on_wake)` holds one pooled connection that LISTENs on `wfc_work`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @asynccontextmanager
    async def listen(self, on_wake: Callable[[str], None]) -> AsyncIterator[PostgresListening]:
        """Call `on_wake("jobs" | "runs" | "runs-waiting")` for each notification until the
        block exits."""

        def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            on_wake(payload)

        async with self._engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            listening = PostgresListening(driver)
            driver.add_termination_listener(listening.lost)
            await driver.add_listener(CHANNEL, deliver)
            try:
                yield listening
            finally:
                driver.remove_termination_listener(listening.lost)
                if driver.is_closed():  # lost: not back into the pool, where it breaks a query
                    await conn.invalidate()
                else:
                    await driver.remove_listener(CHANNEL, deliver)
                    if listening.leading:  # the pooled session would keep holding the lock
                        try:
                            await listening.pass_on_claims()
                        except BaseException:
                            await conn.invalidate()  # closed, the session lets go of it
                            raise


class PostgresListening:
    """The claim lead as a session advisory lock on the LISTEN connection: the server
    lets go of it when that connection goes, so a lead that dies leaves no claims behind."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self._lost = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()  # the connection runs one statement at a time
        self.leading = False

    def lost(self, _driver: Any) -> None:
        self.leading = False
        self._lost.set()

    async def lead_claims(self) -> bool:
        async with self._one_at_a_time:
            if not self.leading and not self._lost.is_set():
                self.leading = bool(await self._driver.fetchval(_LEAD, CLAIM_LEAD_LOCK))
        return self.leading

    async def pass_on_claims(self) -> None:
        """Let go of the lead, if held, and wake the others: one of them takes it over."""
        async with self._one_at_a_time:
            if self.leading:
                await self._driver.execute(_PASS_ON, CLAIM_LEAD_LOCK)
                self.leading = False

    async def until_lost(self) -> None:
        await self._lost.wait()
