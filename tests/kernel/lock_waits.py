"""PostgreSQL lock-order tests: wait until a task of the test waits for a row lock.

The lock-order tests hold a run's row lock in a transaction of their own, start the
path under test, and write the row that path would take second only once it waits:
`a_lock_wait` tells them it does (a session of the test's database waits on a lock).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def a_lock_wait(engine: AsyncEngine, waiter: asyncio.Future[Any]) -> None:
    """Return once a session of this database waits for a row lock (`waiter`'s): fail if
    `waiter` ends first, or never waits."""
    async with engine.connect() as conn:
        for _ in range(600):
            assert not waiter.done(), f"it did not wait for the run's lock: {waiter.result()}"
            found = await conn.scalar(_WAITING)
            await conn.rollback()  # the statistics are read once a transaction: a new one
            if found:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("it never waited for a lock")
