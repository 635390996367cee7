"""PostgreSQL wakeups: a job queued for another worker wakes listeners, a handed one does not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

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


async def _heard(heard: list[str], what: str) -> None:
    for _ in range(100):
        if what in heard:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never heard {what!r}: {heard}")


async def test_one_listener_leads_claims_and_passing_on_wakes_the_others(
    storage: SqlStorage,
) -> None:
    wakeups = storage.wakeups
    assert wakeups is not None
    heard_a: list[str] = []
    heard_b: list[str] = []
    async with wakeups.listen(heard_a.append) as a:
        async with wakeups.listen(heard_b.append) as b:
            assert await a.lead_claims() and a.leading
            assert not await b.lead_claims() and not b.leading
            assert await a.lead_claims()  # held, not taken twice (one release frees it)
            await a.pass_on_claims()
            await _heard(heard_b, "runs-waiting")
            assert not a.leading
            assert await b.lead_claims()
            assert not await a.lead_claims()
        # b's block ended while it led: the lead is free again, and a is told at once.
        await _heard(heard_a, "runs-waiting")
        assert await a.lead_claims()


async def test_a_lost_connection_lets_go_of_the_lead(storage: SqlStorage) -> None:
    wakeups = storage.wakeups
    assert wakeups is not None
    async with wakeups.listen(lambda _what: None) as a:
        assert await a.lead_claims()
        async with storage.engine.connect() as admin:
            await admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
        await asyncio.wait_for(a.until_lost(), timeout=5)
        assert not a.leading and not await a.lead_claims()
    async with wakeups.listen(lambda _what: None) as b:
        assert await b.lead_claims()
