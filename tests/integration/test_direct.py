"""`direct`: statements run on the driver give what SQLAlchemy would, and are all seen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.databases import job_row, sql_storage
from wfc.runtime.adapters.sql import SqlStorage, compiled, direct
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.engine import autocommit
from wfc.runtime.adapters.sql.rows import to_record, to_values
from wfc.runtime.adapters.sql.schema import jobs, runs
from wfc.runtime.records import RunRecord, Status
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run

_GET = select(runs).where(runs.c.id == bindparam("run_id"))
_TOUCH = (
    update(runs)
    .where(runs.c.id == bindparam("run_id"), runs.c.status == Status.PENDING.value)
    .values(input=bindparam("new_input"), updated_at=bindparam("now"))
    .returning(runs.c.id, runs.c.input, runs.c.updated_at)
)
_INSERT_JOB = insert(jobs)


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStorage]:
    async with sql_storage(request.param, tmp_path) as store:
        yield store


async def test_rows_come_back_as_through_sqlalchemy(storage: SqlStorage) -> None:
    """JSON, instants (zoned UTC), NULLs and literal-valued parameters are converted both
    ways exactly as `conn.execute` converts them."""
    run = a_run(FakeClock(), "r")
    later = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with storage.engine.connect() as conn:
        await direct.insert_rows(conn, insert(runs), [to_values(run)])
        ours = await direct.first(conn, _GET, {"run_id": "r"})
        theirs = (await conn.execute(_GET, {"run_id": "r"})).first()
        assert ours is not None and theirs is not None
        assert dict(ours) == dict(theirs._mapping)
        assert to_record(RunRecord, ours) == run
        changed = await direct.fetch(
            conn, _TOUCH, {"run_id": "r", "new_input": {"deep": [1, 2.5, "x"]}, "now": later}
        )
        assert changed == [
            {"id": "r", "input": {"deep": [1, 2.5, "x"]}, "updated_at": later.astimezone(UTC)}
        ]
        assert changed[0]["updated_at"].tzinfo is UTC
        # The literal in the WHERE clause (status PENDING) is bound too: a RUNNING run is
        # left alone.
        await conn.execute(update(runs).values(status=Status.RUNNING.value))
        assert (
            await direct.fetch(conn, _TOUCH, {"run_id": "r", "new_input": {}, "now": later}) == []
        )
        await conn.commit()


async def test_many_rows_go_in_and_counts_come_back(storage: SqlStorage) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with storage.engine.connect() as conn:
        await direct.insert_rows(conn, _INSERT_JOB, [job_row(f"j{n}", now) for n in range(3)])
        returned = await direct.insert_rows(
            conn, insert(jobs).returning(jobs.c.id, jobs.c.payload), [job_row("j3", now)]
        )
        assert returned == [{"id": "j3", "payload": {"config": {"n": 1}, "tags": ["a", None]}}]
        several = await direct.insert_rows(
            conn,
            insert(jobs).returning(jobs.c.id, jobs.c.payload, jobs.c.created_at),
            [job_row(f"j{n}", now) for n in (4, 5)],
        )
        assert sorted(several, key=lambda row: row["id"]) == [
            {"id": f"j{n}", "payload": job_row("", now)["payload"], "created_at": now}
            for n in (4, 5)
        ]
        complete = (
            update(jobs)
            .where(jobs.c.status == Status.PENDING.value)
            .values(status=Status.COMPLETED.value, updated_at=bindparam("now"))
        )
        assert await direct.execute(conn, complete, {"now": now}) == 6
        assert await direct.execute(conn, complete, {"now": now}) == 0
        await conn.commit()


async def test_every_statement_is_seen_whichever_way_it_went(storage: SqlStorage) -> None:
    """`watching` sees the driver's statements and SQLAlchemy's alike: the round-trip
    counts of the tests and the benchmark rest on it."""
    async with autocommit(storage.engine).connect() as conn:  # no BEGIN of SQLite's own
        with direct.watching(storage.engine) as sent:
            await direct.fetch(conn, _GET, {"run_id": "nobody"})
            await conn.execute(select(runs.c.id).where(runs.c.id.in_(["a", "b"])))
            await direct.driver_sql(conn, "SELECT 1")
        await direct.fetch(conn, _GET, {"run_id": "nobody"})  # after the block: not seen
    assert [s.split()[0] for s in sent] == ["SELECT", "SELECT", "SELECT"]
    assert len(sent) == 3


async def test_an_expanding_in_list_goes_through_sqlalchemy(storage: SqlStorage) -> None:
    """A statement rendered per call (an IN list of bound values) cannot run as compiled
    once; it takes SQLAlchemy's path and still answers."""
    statement = select(runs.c.id).where(runs.c.id.in_(bindparam("ids", expanding=True)))
    async with storage.engine.connect() as conn:
        await direct.insert_rows(conn, insert(runs), [to_values(a_run(FakeClock(), "r"))])
        rows = await direct.fetch(conn, statement, {"ids": ["r", "x"]})
        assert [row["id"] for row in rows] == ["r"]
        await conn.commit()


async def test_a_connection_the_server_closed_is_never_pooled_again(tmp_path: Path) -> None:
    """A statement on a connection whose server process went away (a restart, a terminated
    backend) fails, and the connection is invalidated: the next checkout gets a live one,
    where SQLAlchemy's own path would have noticed the disconnect the same way."""
    async with sql_storage("postgres", tmp_path) as store:
        async with store.engine.connect() as conn:
            pid = await direct.first(conn, select(func.pg_backend_pid().label("pid")))
            assert pid is not None
            admin = create_async_engine(store.engine.url)  # not from the pool under test
            async with admin.connect() as other:
                await other.execute(select(func.pg_terminate_backend(pid["pid"])))
            await admin.dispose()
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                await direct.fetch(conn, _GET, {"run_id": "r"})
        async with store.engine.connect() as conn:
            assert await direct.fetch(conn, _GET, {"run_id": "r"}) == []


async def test_parameters_beyond_the_rows_are_refused_off_the_driver(tmp_path: Path) -> None:
    """SQLAlchemy's path binds the rows' keys alone, so a CTE's parameters (`extra`) would be
    lost there: a call on an engine whose statements go through SQLAlchemy (aiosqlite's own,
    not one made by `create_engine`) is refused."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(jobs.metadata.create_all)
        async with engine.connect() as conn:
            now = datetime(2026, 1, 1, tzinfo=UTC)
            with pytest.raises(ValueError, match="driver path"):
                await direct.insert_rows(conn, _INSERT_JOB, [job_row("j", now)], {"x": "y"})
            # Without `extra` it still runs, through SQLAlchemy.
            await direct.insert_rows(conn, _INSERT_JOB, [job_row("j", now)])
            assert [row["id"] for row in await direct.fetch(conn, select(jobs.c.id))] == ["j"]
    finally:
        await engine.dispose()


async def test_statements_skip_sqlalchemys_execution_on_either_dialect(
    storage: SqlStorage,
) -> None:
    """On SQLite as on PostgreSQL the hot statements run on the driver connection: SQLAlchemy's
    own execution (its `before_cursor_execute` event) never sees them."""
    through_sqlalchemy: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        through_sqlalchemy.append(statement)

    event.listen(storage.engine.sync_engine, "before_cursor_execute", seen)
    try:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        async with autocommit(storage.engine).connect() as conn:
            await direct.driver_sql(conn, "BEGIN")
            await direct.insert_rows(conn, _INSERT_JOB, [job_row(f"j{n}", now) for n in (1, 2)])
            assert await direct.execute(conn, update(jobs).values(max_attempts=3)) == 2
            assert len(await direct.fetch(conn, select(jobs.c.id))) == 2
            await direct.driver_sql(conn, "COMMIT")
    finally:
        event.remove(storage.engine.sync_engine, "before_cursor_execute", seen)
    assert through_sqlalchemy == []


async def test_a_failed_statement_raises_sqlalchemys_error_on_either_path(
    storage: SqlStorage,
) -> None:
    """A duplicate key fails the same way whichever path ran it: a `DBAPIError` carrying the
    driver's own error, so callers (the CLI's one-line errors) catch one family."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with storage.engine.connect() as conn:
        await direct.insert_rows(conn, _INSERT_JOB, [job_row("j", now)])
        with pytest.raises(DBAPIError) as raised:
            await direct.insert_rows(conn, _INSERT_JOB, [job_row("j", now)])
        await conn.rollback()
    assert "unique" in str(raised.value.orig).lower()


async def test_a_failed_statement_in_a_write_transaction_raises_sqlalchemys_error(
    storage: SqlStorage,
) -> None:
    """Inside a transaction of `Connections` (on SQLite, this process's write transaction,
    where `direct` runs a statement by a plain call: `drivers.at_once`), a duplicate key
    fails as anywhere else, through each of `insert_rows`, `execute` and `fetch`: a
    `DBAPIError` carrying the driver's own error, and the transaction rolls back."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    connections = Connections(storage.engine)
    async with connections.transaction() as conn:
        await direct.insert_rows(conn, _INSERT_JOB, [job_row("j", now)])
    duplicate = insert(jobs).values({key: bindparam(key) for key in job_row("j", now)})
    attempts = (
        lambda conn: direct.insert_rows(conn, _INSERT_JOB, [job_row("j", now)]),
        lambda conn: direct.execute(conn, duplicate, job_row("j", now)),
        lambda conn: direct.fetch(conn, duplicate.returning(jobs.c.id), job_row("j", now)),
    )
    for attempt in attempts:
        with pytest.raises(DBAPIError) as raised:
            async with connections.transaction() as conn:
                await direct.insert_rows(conn, _INSERT_JOB, [job_row("k", now)])
                await attempt(conn)
        assert "unique" in str(raised.value.orig).lower()
    async with storage.engine.connect() as conn:
        count = select(func.count()).select_from(jobs)
        assert (await conn.execute(count)).scalar() == 1  # "k" rolled back each time


def test_sqlites_own_conversions_agree_with_sqlalchemys() -> None:
    """On SQLite, instants and JSON are converted by `compiled`'s one-call processors: each one
    gives what SQLAlchemy's processor chain gives, on the way in and on the way out, for
    values of the kinds the schema stores (and hands any other kind to SQLAlchemy's)."""
    engine = create_async_engine("sqlite+aiosqlite://")
    dialect = engine.dialect
    instant, document = runs.c.updated_at.type, runs.c.input.type
    instants = [
        datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC),  # no microseconds: still six digits
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # a year of three digits
        datetime(2030, 5, 6, 23, 30, tzinfo=timezone(timedelta(hours=-2))),  # the next day
    ]
    documents: list[object] = [{"a": [1, 2.5, None, "é"]}, [], "text", 3, 2.5, True]
    for type_, values in ((instant, instants), (document, documents)):
        ours_in = compiled.sqlite_bind(type_, dialect)
        theirs_in = type_.dialect_impl(dialect).bind_processor(dialect)
        ours_out = compiled.sqlite_result(type_, dialect)
        theirs_out = type_.dialect_impl(dialect).result_processor(dialect, None)
        assert ours_in is not None and theirs_in is not None
        assert ours_out is not None and theirs_out is not None
        for value in values:
            stored = theirs_in(value)
            assert ours_in(value) == stored
            assert (
                ours_out(stored)
                == theirs_out(stored)
                == (value.astimezone(UTC) if isinstance(value, datetime) else value)
            )
    instant_out, document_out = (compiled.sqlite_result(t, dialect) for t in (instant, document))
    assert instant_out is not None and document_out is not None
    assert instant_out(None) is None
    assert document_out(7) == 7  # a number SQLite gave as such
    instant_in = compiled.sqlite_bind(instant, dialect)
    assert instant_in is not None
    with pytest.raises(ValueError, match="naive"):
        instant_in(datetime(2030, 1, 1))
