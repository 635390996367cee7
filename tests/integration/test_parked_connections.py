"""A pin's connection parked for the next pin (`parked`), on SQLite and PostgreSQL: taken
again without a checkout, never while it may be inside a transaction, never more than
half the pool, closed with its engine, and clean after a statement cancelled while it
waited for a lock."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.databases import sql_storage
from tests.kernel.lock_waits import a_lock_wait
from wfc.runtime.adapters.sql import SqlStorage, parked
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStorage]:
    async with sql_storage(request.param, tmp_path) as store:
        await store.persistence.create_run(a_run(FakeClock(), "r"))
        yield store


def _count_checkouts(store: SqlStorage) -> list[int]:
    seen: list[int] = []
    event.listen(store.engine.sync_engine.pool, "checkout", lambda *_: seen.append(1))
    return seen


async def _pinned_call(store: SqlStorage) -> AsyncConnection | None:
    """A task of its own that pins, makes one call, and says which connection it used."""

    async def pinned() -> AsyncConnection | None:
        async with store.pinning.pinned():
            await store.persistence.get_run("r")
            pin = store.pinning._pin()
            return None if pin is None else pin.conn

    return await asyncio.create_task(pinned())


async def test_a_pin_takes_the_connection_the_last_pin_parked(storage: SqlStorage) -> None:
    checkouts = _count_checkouts(storage)
    used = [await _pinned_call(storage) for _ in range(5)]
    assert len(checkouts) == 1  # five pins, one after the other: one checkout
    assert used[0] is not None and all(conn is used[0] for conn in used)


async def test_a_connection_left_in_a_transaction_is_not_parked(storage: SqlStorage) -> None:
    """One whose transaction failed to roll back (`broken`) is invalidated, as before; one
    with SQLAlchemy's own transaction open goes back to the pool, which ends it."""
    async with storage.pinning.pinned():
        await storage.persistence.get_run("r")
        pin = storage.pinning._pin()
        assert pin is not None and pin.conn is not None
        pin.broken = True
        broken = pin.conn
    assert parked.take(storage.engine.sync_engine.pool) is None
    assert await _pinned_call(storage) is not broken
    async with storage.pinning.pinned():
        pin = storage.pinning._pin()
        assert pin is not None
        conn = await storage.pinning._connection(pin)
        await conn.begin()  # SQLAlchemy's transaction, left open
    assert parked.take(storage.engine.sync_engine.pool) is None
    assert await _pinned_call(storage) is not conn


async def test_a_begin_cancelled_while_it_waits_for_the_lock_leaves_nothing_behind(
    storage: SqlStorage,
) -> None:
    """SQLite: a BEGIN waiting on its connection's thread for another process's lock, cancelled,
    still runs once the lock is free: its connection must be closed, not parked, or it
    would hold the write lock and fail every transaction handed it."""
    if storage.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's file lock (PostgreSQL: the row-lock test below)")
    database = storage.engine.url.database
    assert database is not None
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, as SQLite sees it

    async def transaction() -> None:
        async with storage.persistence.transaction() as tx:
            await tx.get_run("r")

    waiting = asyncio.create_task(transaction())
    await asyncio.sleep(0.3)  # its BEGIN waits in SQLite's busy handler, on its thread
    waiting.cancel()
    await asyncio.sleep(0.1)
    other.execute("COMMIT")  # the cancelled BEGIN gets the lock now, on its thread
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for _ in range(3):
        await transaction()
    probe = sqlite3.connect(database, isolation_level=None, timeout=0.5)
    probe.execute("BEGIN IMMEDIATE")  # nobody holds the write lock
    probe.execute("ROLLBACK")
    probe.close()
    other.close()


async def test_at_most_half_the_pool_is_parked(storage: SqlStorage) -> None:
    pool: Any = storage.engine.sync_engine.pool
    started = asyncio.Event()
    release = asyncio.Event()

    async def pinned() -> None:
        async with storage.pinning.pinned():
            await storage.persistence.get_run("r")
            started.set()
            await release.wait()

    tasks = [asyncio.create_task(pinned()) for _ in range(pool.size())]
    while pool.checkedout() < pool.size():
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*tasks)
    assert pool.checkedout() == pool.size() // 2
    assert pool.checkedin() == pool.size() - pool.size() // 2


async def test_a_connection_is_not_parked_when_the_pool_has_little_room_left(
    storage: SqlStorage,
) -> None:
    """Calls outside a pin take their connections from the pool: a pin gives its connection
    back, not parks it, when parking it would leave fewer than two free there."""
    pool: Any = storage.engine.sync_engine.pool
    others = [await storage.engine.connect() for _ in range(pool.size() - 2)]
    try:
        await _pinned_call(storage)  # its connection the pool's last but one
        assert parked.take(pool) is None
    finally:
        for conn in others:
            await conn.close()
    await _pinned_call(storage)
    kept = parked.take(pool)
    assert kept is not None  # room again: parked
    await kept.close()


async def test_parked_connections_close_with_their_engine(tmp_path: Path) -> None:
    async with sql_storage("sqlite", tmp_path) as store:
        await store.persistence.create_run(a_run(FakeClock(), "r"))
        conn = await _pinned_call(store)
        assert conn is not None and not conn.invalidated
        dbapi: Any = conn.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
        thread = dbapi.thread
    assert thread.closed  # `close()` disposed of the engine: the parked one went with it


async def test_a_statement_cancelled_while_it_waits_for_a_row_lock_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """PostgreSQL: a transaction's UPDATE waiting for a row another session holds, its task
    cancelled. Its connection is parked (rolled back: not `broken`), and the pins that take
    it next must find it outside any transaction, holding no lock, and serving them."""
    async with sql_storage("postgres", tmp_path) as store:
        await store.persistence.create_run(a_run(FakeClock(), "r"))
        async with store.engine.connect() as other:
            await other.execute(text("SELECT 1 FROM runs WHERE id = 'r' FOR UPDATE"))

            async def transaction() -> None:
                async with store.persistence.transaction() as tx:
                    await tx.update_run("r", {})

            waiting = asyncio.create_task(transaction())
            await a_lock_wait(store.engine, waiting)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await other.rollback()  # the row is free: a cancel not yet served would take it
        for _ in range(3):
            await transaction()  # on the parked connection: nothing left open on it
        async with store.engine.connect() as probe:
            await probe.execute(text("SET lock_timeout = '2s'"))
            await probe.execute(text("SELECT 1 FROM runs WHERE id = 'r' FOR UPDATE"))  # free
            await probe.rollback()
        idle = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        )
        async with store.engine.connect() as probe:
            assert await probe.scalar(idle) == 0
