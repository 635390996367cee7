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
from wfc.runtime.adapters.sql.sqlite_writes import CHECKPOINT_EVERY


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


@pytest.mark.parametrize(("query", "commit_trips"), [("", 0), ("?synchronous=full", 1)])
async def test_a_transaction_makes_no_trip_to_its_thread_unless_it_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, query: str, commit_trips: int
) -> None:
    """The BEGIN and the statements after it run on the event loop's thread, and so does the
    COMMIT under `synchronous=NORMAL` (it syncs nothing in WAL mode); under `full` the
    COMMIT syncs the WAL and goes to the connection's thread."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}{query}")
    trips: list[Any] = []
    loop_thread = threading.get_ident()
    ran_on: list[tuple[str, int]] = []
    real_call = sqlite_thread.SqliteThread.call
    real_run = sqlite_thread.run_statement

    async def counted(self: sqlite_thread.SqliteThread, function: Any) -> Any:
        trips.append(function)
        return await real_call(self, function)

    def where(connection: Any, sql: str, parameters: Any) -> Any:
        ran_on.append((sql.split()[0], threading.get_ident()))
        return real_run(connection, sql, parameters)

    try:
        async with engine.begin() as conn:  # a connection already open: no trips to open one
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)"))
            await conn.execute(text("SELECT 1"))  # the busy timeout, read once
        monkeypatch.setattr(sqlite_thread.SqliteThread, "call", counted)
        monkeypatch.setattr(sqlite_thread, "run_statement", where)
        async with engine.begin() as conn:
            for n in range(5):
                await conn.execute(text("INSERT INTO t (writer) VALUES (:n)"), {"n": n})
            rows = (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one()
        made = len(trips)  # (closing the connections makes one each)
    finally:
        await engine.dispose()
    assert rows == 5
    assert ran_on[:7] == [
        ("BEGIN", loop_thread),
        *[("INSERT", loop_thread)] * 5,
        ("SELECT", loop_thread),
    ]
    assert ran_on[7][0] == "COMMIT"
    assert (ran_on[7][1] == loop_thread) == (commit_trips == 0)
    assert made == commit_trips


async def test_the_wal_is_checkpointed_every_so_many_commits(tmp_path: Path) -> None:
    """With SQLite's automatic checkpoint off (`synchronous=NORMAL`), the WAL is still copied
    back into the database file: once every `Checkpoints.every` commits, on a connection's
    thread, so it stops growing."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    wal = tmp_path / "wal.db-wal"
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == 0
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, pad TEXT)"))
            await conn.commit()
        sizes = []
        for _ in range(3):
            for n in range(CHECKPOINT_EVERY):
                async with engine.begin() as conn:
                    await conn.execute(text("INSERT INTO t (pad) VALUES (:p)"), {"p": "x" * n})
            sizes.append(wal.stat().st_size)
        async with autocommit(engine).connect() as conn:
            busy, frames, copied = (
                await conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))
            ).one()
    finally:
        await engine.dispose()
    # Checkpointed, the WAL is written again from its start: it stays the size one
    # checkpoint interval fills, where without checkpoints it grew with every commit.
    assert sizes[2] == sizes[1]
    assert busy == 0 and frames == copied


# Waiting on the event loop would hold it for the whole busy timeout (30 s), and the test
# with it: it fails well before that.
@pytest.mark.timeout(20)
async def test_a_statement_that_would_wait_for_another_process_waits_on_its_thread(
    tmp_path: Path,
) -> None:
    """While another engine (another process, as far as turns go) holds the write lock, a
    write waits on its connection's thread, not on the event loop: the other engine,
    on the same loop, commits meanwhile, and the write then lands."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'two.db'}"
    holder, waiter = create_engine(url), create_engine(url)
    try:
        async with holder.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)"))
        async with autocommit(waiter).connect() as conn:
            await conn.execute(text("SELECT 1"))  # opened before the lock is taken
            async with holder.begin() as held:
                await held.execute(text("INSERT INTO t (writer) VALUES (1)"))
                write = asyncio.create_task(conn.execute(text("INSERT INTO t (writer) VALUES (2)")))
                await asyncio.sleep(0.2)  # the loop runs while the write waits
                assert not write.done()
            async with asyncio.timeout(10):
                await write
        async with autocommit(waiter).connect() as conn:
            rows = (await conn.execute(text("SELECT writer FROM t ORDER BY id"))).all()
        assert [row.writer for row in rows] == [1, 2]
    finally:
        await holder.dispose()
        await waiter.dispose()


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


async def test_a_database_file_deleted_under_an_engine_is_not_created_again(
    tmp_path: Path,
) -> None:
    """The first connection may create the file (a new database); once one was opened, a
    later connection of the engine finds the file gone instead of creating an empty one
    (which a worker's health check then took for a file "replaced", and other processes
    for an empty database)."""
    path = tmp_path / "gone.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await conn.commit()
        await engine.dispose()  # the next statement needs a new connection
        for name in ("gone.db", "gone.db-wal", "gone.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        with pytest.raises(Exception, match="unable to open database file"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert not path.exists()
    finally:
        await engine.dispose()
    fresh = create_engine(f"sqlite+aiosqlite:///{path}")  # a new engine creates it again
    try:
        async with fresh.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await fresh.dispose()
    assert path.exists()
