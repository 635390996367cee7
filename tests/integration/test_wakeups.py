"""PostgreSQL wakeups: a job queued for another worker wakes listeners, a handed one does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.databases import postgres_database
from wfc.runtime.adapters.sql import SqlStorage, migrate, open_storage
from wfc.runtime.handoff import handing_off_to
from wfc.testing import SlotTaker
from wfc.testing.conformance import a_job


@pytest.fixture(params=["migrated", "created"])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[SqlStorage]:
    """The triggers as `wfc db upgrade` installs them, and as `create_all` does (tests)."""
    async with postgres_database(empty=request.param == "migrated") as url:
        store = open_storage(url)
        if request.param == "migrated":
            await migrate.upgrade(store.engine)
        yield store
        await store.close()


async def test_only_jobs_left_for_any_worker_wake_the_listeners(storage: SqlStorage) -> None:
    wakeups = storage.wakeups
    assert wakeups is not None
    heard: list[str] = []
    async with wakeups.listen(heard.append):
        taker = SlotTaker(1)
        with handing_off_to(taker):
            await storage.jobs.enqueue([a_job("r", "mine")])
        await asyncio.sleep(0.3)
        assert len(taker.taken) == 1 and heard == []
        with handing_off_to(taker):  # no slot left: queued for whoever dequeues first
            await storage.jobs.enqueue([a_job("r", "anyone's"), a_job("r", "also")])
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    assert heard == ["jobs"]  # one notification for the statement's two rows
