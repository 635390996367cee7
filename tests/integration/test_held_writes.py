"""`direct.defer`: a write held until its transaction's next statement is never lost, never
seen late, and never outlives a rollback — and on asyncpg it costs no round trip of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from tests.databases import job_row, sql_storage
from wfc.runtime.adapters.sql import SqlStorage, direct, outbox
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.schema import blobs, jobs, runs
from wfc.runtime.records import NewOutboxEvent
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run

NOW = datetime(2026, 1, 1, tzinfo=UTC)
_BLOB = insert(blobs)
_JOB = insert(jobs)
_RENAME_JOB = update(jobs).where(jobs.c.id == bindparam("job_id")).values(stage_id="renamed")
_RUN = select(runs.c.id).where(runs.c.id == bindparam("run_id"))
_JOB_COUNT = select(func.count()).select_from(jobs)


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStorage]:
    async with sql_storage(request.param, tmp_path) as store:
        await store.persistence.create_run(a_run(FakeClock(), "r"))
        yield store


async def _job_ids(store: SqlStorage) -> list[str]:
    async with store.engine.connect() as conn:
        return sorted((await conn.execute(select(jobs.c.id))).scalars())


def _words(sql: str) -> str:
    """`sql` with its whitespace as single spaces, and one after each `(`."""
    return " ".join(sql.replace("(", "( ").split())


def _on_postgres(store: SqlStorage) -> bool:
    return store.engine.dialect.name == "postgresql"


async def test_held_writes_travel_with_the_next_statement(storage: SqlStorage) -> None:
    """Two writes to tables the next statement does not touch go inside it: one round trip
    for three statements on asyncpg; on SQLite each runs when it is made."""
    with direct.watching(storage.engine) as sent:
        async with Connections(storage.engine).transaction() as conn:
            await direct.defer(conn, _BLOB, {"key": "k", "data": b"x"})
            await direct.defer_rows(conn, _JOB, [job_row("j1", NOW), job_row("j2", NOW)])
            found = await direct.fetch(conn, _RUN, {"run_id": "r"})
    assert [row["id"] for row in found] == ["r"]
    assert await _job_ids(storage) == ["j1", "j2"]
    assert await storage.blobs.get("k") == b"x"
    between = sent[1:-1]  # after BEGIN, before COMMIT
    if _on_postgres(storage):
        assert len(between) == 1 and _words(between[0]).startswith("WITH wfc_part_0 AS ( INSERT")
    else:
        assert len(between) == 3


async def test_a_statement_that_reads_what_is_held_sees_it(storage: SqlStorage) -> None:
    """A statement touching a held write's table runs after it, on either path to the
    database, and held writes to one table keep their order."""
    async with Connections(storage.engine).transaction() as conn:
        await direct.defer_rows(conn, _JOB, [job_row("j1", NOW)])
        counted = await direct.first(conn, _JOB_COUNT)
        assert counted is not None and list(counted.values()) == [1]
        await direct.defer_rows(conn, _JOB, [job_row("j2", NOW)])
        assert (await conn.execute(_JOB_COUNT)).scalar_one() == 2  # through SQLAlchemy
        await direct.defer_rows(conn, _JOB, [job_row("j3", NOW)])
        await direct.defer(conn, _RENAME_JOB, {"job_id": "j3"})  # must see j3's insert
    async with storage.engine.connect() as check:
        renamed = await check.execute(select(jobs.c.stage_id).where(jobs.c.id == "j3"))
        assert renamed.scalar_one() == "renamed"


async def test_a_rollback_drops_what_is_held(storage: SqlStorage) -> None:
    """Held writes of a transaction that fails are never sent (on asyncpg; SQLite ran
    them at once), nor sent later on the same connection; none is kept."""
    connections = Connections(storage.engine)
    async with connections.pinned():
        with direct.watching(storage.engine) as sent:
            with pytest.raises(RuntimeError):
                async with connections.transaction() as conn:
                    await direct.defer_rows(conn, _JOB, [job_row("j1", NOW)])
                    raise RuntimeError("the transaction fails")
            async with connections.transaction() as conn:  # the same connection goes on
                await direct.fetch(conn, _RUN, {"run_id": "r"})
    assert await _job_ids(storage) == []
    inserts = [statement for statement in sent if "INSERT INTO jobs" in statement]
    assert len(inserts) == (0 if _on_postgres(storage) else 1)


async def test_a_held_write_that_fails_fails_its_transaction(storage: SqlStorage) -> None:
    """A duplicate key in a held write raises from the statement it travels with (or the
    COMMIT), as SQLAlchemy's error, and nothing of the transaction is kept."""
    await storage.blobs.put("k", b"x")
    with pytest.raises(DBAPIError):
        async with Connections(storage.engine).transaction() as conn:
            await direct.defer_rows(conn, _JOB, [job_row("j1", NOW)])
            await direct.defer(conn, _BLOB, {"key": "k", "data": b"again"})
    assert await _job_ids(storage) == []
    assert await storage.blobs.get("k") == b"x"


async def test_a_transaction_of_held_writes_alone_is_one_statement(storage: SqlStorage) -> None:
    """On asyncpg nothing needed the BEGIN, so the writes go as one statement, which is a
    transaction of its own: no BEGIN, no COMMIT. A failure in it keeps nothing and sends
    no ROLLBACK, there being no transaction to roll back."""
    with direct.watching(storage.engine) as sent:
        async with Connections(storage.engine).transaction() as conn:
            await direct.defer_rows(conn, _JOB, [job_row("j1", NOW)])
            await direct.defer(conn, _BLOB, {"key": "k", "data": b"x"})
    assert await _job_ids(storage) == ["j1"]
    assert await storage.blobs.get("k") == b"x"
    if _on_postgres(storage):
        assert len(sent) == 1 and _words(sent[0]).startswith("WITH wfc_part_0 AS ( INSERT")
    else:
        assert [sent[0], sent[-1], len(sent)] == ["BEGIN IMMEDIATE", "COMMIT", 4]
    with direct.watching(storage.engine) as sent, pytest.raises(DBAPIError):
        async with Connections(storage.engine).transaction() as conn:
            await direct.defer_rows(conn, _JOB, [job_row("j2", NOW)])
            await direct.defer(conn, _BLOB, {"key": "k", "data": b"again"})
    assert await _job_ids(storage) == ["j1"]
    assert "ROLLBACK" not in sent if _on_postgres(storage) else sent[-1] == "ROLLBACK"


@pytest.mark.parametrize("path", ["driver", "sqlalchemy"])
async def test_begin_goes_before_the_first_statement_sent(storage: SqlStorage, path: str) -> None:
    """A statement that is not held is inside the transaction whichever path sends it:
    its write is rolled back with the rest."""
    with pytest.raises(RuntimeError):
        async with Connections(storage.engine).transaction() as conn:
            if path == "driver":
                await direct.execute(conn, _JOB.values(job_row("j1", NOW)))
            else:
                await conn.execute(_JOB, job_row("j1", NOW))
            raise RuntimeError("the transaction fails")
    assert await _job_ids(storage) == []


async def test_outside_a_transaction_a_write_runs_at_once(storage: SqlStorage) -> None:
    async with Connections(storage.engine).single() as conn:
        await direct.defer_rows(conn, _JOB, [job_row("j1", NOW)])
        await direct.defer(conn, _BLOB, {"key": "k", "data": b"x"})
        assert await _job_ids(storage) == ["j1"]  # seen from another connection
        assert await storage.blobs.get("k") == b"x"


async def test_an_outbox_append_carries_held_writes(storage: SqlStorage) -> None:
    """The append (the run's counter and its events in one statement) is a construct, so a
    held blob and job travel in it: one statement between BEGIN and COMMIT on asyncpg.
    (As text it could carry nothing: a wide group's sibling paid a round trip more.)"""
    event = NewOutboxEvent(
        run_id="r",
        event_type="stage.completed",
        payload={"n": 1},
        causation_id="c",
        occurred_at=NOW,
    )
    with direct.watching(storage.engine) as sent:
        async with Connections(storage.engine).transaction() as conn:
            await direct.defer(conn, _BLOB, {"key": "k", "data": b"x"})
            await direct.defer_rows(conn, _JOB, [job_row("j1", NOW)])
            appended = await outbox.append(conn, [event])
    assert await _job_ids(storage) == ["j1"] and await storage.blobs.get("k") == b"x"
    async with storage.engine.connect() as check:
        assert [record.id for record in await outbox.of_run(check, "r")] == ["r:1"]
    if _on_postgres(storage):
        assert [record.sequence for record in appended] == [1]
        assert len(sent[1:-1]) == 1 and "INSERT INTO outbox" in sent[1]
