"""`sqlite_thread`: a SQLite file's connections take turns to write, and a transaction's
statements run without a trip to the connection's thread. On real files in tmp_path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql import sqlite_thread
from wfc.runtime.adapters.sql.engine import autocommit, create_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")

    @event.listens_for(engine.sync_engine, "connect")
    def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        # After the engine's own PRAGMAs: a connection that finds the file locked fails at
        # once instead of sleeping in SQLite's busy handler, so a missed turn shows.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)"))
    yield engine
    await engine.dispose()


async def test_connections_of_one_process_take_turns_to_write(engine: AsyncEngine) -> None:
    """Eight tasks, each on its own connection, interleave transactions and one-statement
    writes while others are open: none meets 'database is locked', and every row lands."""

    async def writer(n: int) -> None:
        for i in range(5):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (writer) VALUES (:n)"), {"n": n})
                await asyncio.sleep(0)  # let the other writers try while this one holds it
                await conn.execute(text("INSERT INTO t (writer) VALUES (:n)"), {"n": n})
            async with autocommit(engine).connect() as conn:  # one statement, no BEGIN
                await conn.execute(text("INSERT INTO t (writer) VALUES (:n)"), {"n": n * 100 + i})

    await asyncio.gather(*(writer(n) for n in range(8)))
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
    assert count == 8 * 5 * 3


async def test_a_failed_transaction_gives_its_turn_back(engine: AsyncEngine) -> None:
    """A transaction that fails and rolls back frees the turn: the next writer goes ahead."""
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (id, writer) VALUES (1, 1)"))
    with pytest.raises(Exception, match="UNIQUE"):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, writer) VALUES (1, 2)"))
    # The connection that failed (the pool's only one) stays checked out, idle, while
    # another connection writes: a turn the failed one kept would stop the other.
    async with autocommit(engine).connect():
        async with asyncio.timeout(10), engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (id, writer) VALUES (2, 3)"))


async def test_a_transaction_makes_two_trips_to_its_thread(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN and COMMIT go to the connection's thread; the statements between them run on
    the event loop's, and so does nothing outside a transaction."""
    trips: list[str] = []
    loop_thread = threading.get_ident()
    ran_on: list[int] = []
    real_call = sqlite_thread.SqliteThread.call
    real_run = sqlite_thread.run_statement

    async def counted(self: sqlite_thread.SqliteThread, function: Any) -> Any:
        trips.append(function.args[2] if len(function.args) > 2 else "")
        return await real_call(self, function)

    def where(connection: Any, sql: str, parameters: Any) -> Any:
        if sql.startswith("INSERT"):
            ran_on.append(threading.get_ident())
        return real_run(connection, sql, parameters)

    async with engine.connect() as conn:  # a connection already open: no trips to open one
        await conn.execute(text("SELECT 1"))
    monkeypatch.setattr(sqlite_thread.SqliteThread, "call", counted)
    monkeypatch.setattr(sqlite_thread, "run_statement", where)
    async with engine.begin() as conn:
        for n in range(5):
            await conn.execute(text("INSERT INTO t (writer) VALUES (:n)"), {"n": n})
        rows = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
    assert rows == 5
    assert ran_on == [loop_thread] * 5
    assert [sql.split()[0] for sql in trips if sql] == ["BEGIN"]
    assert len(trips) == 2  # BEGIN IMMEDIATE, then the commit (`Connection.commit`)


@pytest.mark.parametrize(
    ("query", "level"), [("", 1), ("?synchronous=full", 2), ("?synchronous=NORMAL", 1)]
)
async def test_the_url_chooses_normal_or_full_durability(
    tmp_path: Path, query: str, level: int
) -> None:
    """`synchronous=NORMAL` (1) unless the URL asks for `full` (2); anything else is refused
    with the choices named."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'durable.db'}{query}")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar_one() == level
    finally:
        await engine.dispose()
    with pytest.raises(ValueError, match="synchronous=normal or full"):
        create_engine(f"sqlite+aiosqlite:///{tmp_path / 'durable.db'}?synchronous=off")
