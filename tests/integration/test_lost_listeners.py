"""A LISTEN connection the server closed (`idle_session_timeout`, a proxy, a restart) is
not handed back to the pool: the next query would get a closed connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool

from tests.databases import postgres_database
from wfc.runtime.adapters.sql import SqlStorage, open_storage


@pytest.fixture
async def storage() -> AsyncIterator[SqlStorage]:
    async with postgres_database() as url:
        store = open_storage(url)
        yield store
        await store.close()


async def _terminate_listening(storage: SqlStorage, channel: str) -> None:
    """End this test's LISTEN session, and only it: the server is shared with other tests
    (other xdist workers, `wfc worker` processes) whose sessions listen on the same
    channels in databases of their own."""
    async with storage.engine.connect() as admin:
        ended = await admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query = :listen "
                "AND pid <> pg_backend_pid()"
            ),
            {"listen": f'LISTEN "{channel}"'},
        )
        assert ended.all() == [(True,)]


async def _queries_all_work(storage: SqlStorage) -> None:
    pool = storage.engine.pool
    assert isinstance(pool, QueuePool)
    for _ in range(pool.size() + 2):  # round the whole pool
        async with storage.engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


async def test_a_lost_run_end_listening_leaves_the_pool_working(storage: SqlStorage) -> None:
    run_ends = storage.run_ends
    assert run_ends is not None
    async with run_ends.listen(lambda _run_id: None) as lost:
        await _terminate_listening(storage, "wfc_run_ended")
        await asyncio.wait_for(lost, timeout=5)
    await _queries_all_work(storage)


async def test_a_lost_work_listening_leaves_the_pool_working(storage: SqlStorage) -> None:
    wakeups = storage.wakeups
    assert wakeups is not None
    async with wakeups.listen(lambda _what: None) as listening:
        await _terminate_listening(storage, "wfc_work")
        await asyncio.wait_for(listening.until_lost(), timeout=5)
    await _queries_all_work(storage)
