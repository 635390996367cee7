"""`direct` on SQLite: what a statement costs above SQLite's own call, kept low without
changing what it does (the statement's place, its values, its connection)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError

from tests.databases import job_row, sql_storage
from wfc.runtime.adapters.sql import compiled, direct, drivers
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.schema import jobs, runs
from wfc.runtime.adapters.sql.sqlite_driver import SqliteDriver


async def test_statements_inside_a_write_transaction_run_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside this process's write transaction a statement runs on the spot
    (`Connection.run_within`): only the BEGIN and the COMMIT take the driver's coroutine."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    async with sql_storage("sqlite", tmp_path) as store:
        runs_through_driver: list[str] = []
        real_run = SqliteDriver.run

        async def counted(self: SqliteDriver, sql: str, args: list[Any]) -> Any:
            runs_through_driver.append(sql.split()[0])
            return await real_run(self, sql, args)

        monkeypatch.setattr(SqliteDriver, "run", counted)
        async with Connections(store.engine).transaction() as conn:
            await direct.insert_rows(conn, insert(jobs), [job_row(f"j{n}", now) for n in (1, 2)])
            found = await direct.fetch(conn, select(jobs.c.id).order_by(jobs.c.id))
            changed = await direct.execute(conn, jobs.update().values(max_attempts=3))
        assert [row["id"] for row in found] == ["j1", "j2"]
        assert changed == 2
        assert runs_through_driver == ["BEGIN", "COMMIT"]
        async with Connections(store.engine).single() as conn:
            assert len(await direct.fetch(conn, select(jobs.c.id))) == 2  # committed


def test_an_instant_bound_again_is_converted_again_when_it_differs() -> None:
    """The last instant's text is reused only for that very instant: a different one, or
    the same one after another, is converted afresh (in UTC whatever its zone)."""
    bind = compiled.sqlite_bind(runs.c.updated_at.type, sqlite.dialect())
    assert bind is not None
    first = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    other = datetime(2030, 5, 6, 7, 8, 9, 123457, tzinfo=UTC)
    zoned = datetime(2030, 5, 6, 9, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert bind(first) == "2030-05-06 07:08:09.123456"
    assert bind(first) == "2030-05-06 07:08:09.123456"
    assert bind(other) == "2030-05-06 07:08:09.123457"
    assert bind(zoned) == "2030-05-06 07:08:09.123456"
    assert bind(first) == "2030-05-06 07:08:09.123456"
    assert bind(datetime(2031, 1, 1, tzinfo=UTC)) == "2031-01-01 00:00:00.000000"


def test_json_is_written_as_json_dumps_writes_it() -> None:
    """JSON parameters go as `json.dumps` (its defaults) would write them, through the
    encoder made once; what it cannot encode fails as `json.dumps` fails."""
    bind = compiled.sqlite_bind(runs.c.input.type, sqlite.dialect())
    assert bind is not None
    values: list[object] = [{"a": [1, 2.5, None, "é", True]}, {}, [], "x\n", 3, {"n": {"m": []}}]
    for value in values:
        assert bind(value) == json.dumps(value)
    with pytest.raises(TypeError, match="not JSON serializable"):
        bind({"when": datetime(2030, 1, 1, tzinfo=UTC)})


async def test_a_connection_invalidated_under_sqlalchemy_gets_a_new_driver(
    tmp_path: Path,
) -> None:
    """What `direct` keeps for a connection (`drivers.Link`) belongs to the pooled
    connection it was found on: once SQLAlchemy replaces that one, statements go to the
    new one's driver, not to the closed one's."""
    async with sql_storage("sqlite", tmp_path) as store:
        statement = select(runs.c.id).where(runs.c.id == bindparam("run_id"))
        async with store.engine.connect() as conn:
            assert await direct.fetch(conn, statement, {"run_id": "r"}) == []
            await conn.invalidate()
            await conn.rollback()
            await conn.execute(select(1))  # SQLAlchemy reconnects it on its own path
            assert await direct.fetch(conn, statement, {"run_id": "r"}) == []


async def test_a_pinned_connection_invalidated_is_replaced_at_the_pins_next_call(
    tmp_path: Path,
) -> None:
    """A pin asks whether its connection was invalidated (`connections._invalidated`, read
    where SQLAlchemy reads it) before each call outside a transaction: an invalidated one
    is given back, and the next call runs on a new one."""
    async with sql_storage("sqlite", tmp_path) as store:
        connections = Connections(store.engine)
        statement = select(runs.c.id).where(runs.c.id == bindparam("run_id"))
        async with connections.pinned():
            async with connections.single() as conn:
                assert await direct.fetch(conn, statement, {"run_id": "r"}) == []
                await conn.invalidate()
            async with connections.single() as again:
                assert again is not conn
                assert await direct.fetch(again, statement, {"run_id": "r"}) == []


async def test_a_sqlite_connection_keeps_its_link_across_checkouts(tmp_path: Path) -> None:
    """SQLite's DBAPI connection keeps the `drivers.Link` made at its first checkout, so a
    later checkout of it finds the same one; a connection that replaced it makes its own."""
    async with sql_storage("sqlite", tmp_path) as store:
        links = []
        for _ in range(2):
            async with store.engine.connect() as conn:
                await direct.fetch(conn, select(runs.c.id))
                raw = await conn.get_raw_connection()
                links.append((raw.dbapi_connection, drivers.kept(conn)))
        (first_dbapi, first_link), (second_dbapi, second_link) = links
        assert first_link is not None and second_link is not None
        if first_dbapi is second_dbapi:  # the pool lent the same connection again
            assert second_link is first_link
        assert second_link is getattr(second_dbapi, "link", None)


async def test_an_insert_leaves_out_the_columns_every_row_leaves_null(tmp_path: Path) -> None:
    """On SQLite a column every row leaves None, nullable and without a default of its own,
    is left out of the INSERT (binding None costs `sqlite3` a failed adapter lookup): the
    rows stored are the same. A column one row sets is bound for every row, and a None for
    a column with a default of its own is still bound (it stores NULL, or fails, as before)."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = now + timedelta(minutes=1)
    async with sql_storage("sqlite", tmp_path) as store:
        connections = Connections(store.engine)
        rows = [
            job_row("j1", now) | {"run_at": None, "worker_id": None, "last_error": "x"},
            job_row("j2", now) | {"run_at": later, "worker_id": None, "last_error": None},
        ]
        with direct.watching(store.engine) as seen:
            async with connections.transaction() as conn:
                await direct.insert_rows(conn, insert(jobs), rows)
                await direct.insert_rows(conn, insert(jobs), [rows[0] | {"id": "j3"}])
        inserts = [sql for sql in seen if sql.startswith("INSERT")]
        assert len(inserts) == 2
        assert all("worker_id" not in sql and "last_error" in sql for sql in inserts)
        assert "run_at" in inserts[0] and "run_at" not in inserts[1]
        async with connections.single() as conn:
            stored = await direct.fetch(
                conn, select(jobs.c.id, jobs.c.run_at, jobs.c.worker_id, jobs.c.last_error)
            )
        assert sorted(stored, key=lambda row: str(row["id"])) == [
            {"id": "j1", "run_at": None, "worker_id": None, "last_error": "x"},
            {"id": "j2", "run_at": later, "worker_id": None, "last_error": None},
            {"id": "j3", "run_at": None, "worker_id": None, "last_error": "x"},
        ]
        with pytest.raises(DBAPIError, match="NOT NULL"):  # not the column's default
            async with connections.transaction() as conn:
                await direct.insert_rows(conn, insert(jobs), [job_row("j4", now) | {"queue": None}])


async def test_a_column_with_a_server_default_is_bound_its_none(tmp_path: Path) -> None:
    """A None for a nullable column with a server default is bound, not left out: left
    out, the column would take its default instead of NULL."""
    table = Table(
        "defaults",
        MetaData(),
        Column("id", String, primary_key=True),
        Column("served", String, server_default="s"),
        Column("plain", String),
    )
    async with sql_storage("sqlite", tmp_path) as store:
        async with store.engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
        connections = Connections(store.engine)
        row = {"id": "a", "served": None, "plain": None}
        with direct.watching(store.engine) as seen:
            async with connections.transaction() as conn:
                await direct.insert_rows(conn, insert(table), [row])
        assert [sql for sql in seen if sql.startswith("INSERT")] == [
            "INSERT INTO defaults (id, served) VALUES (?, ?)"
        ]
        async with connections.single() as conn:
            assert await direct.fetch(conn, select(table)) == [row]


async def test_a_statement_failed_inside_a_transaction_is_wrapped_and_seen(
    tmp_path: Path,
) -> None:
    """A statement run at once inside the write transaction (`drivers.on_sqlite`, through
    the connection's `run_within`) that fails raises SQLAlchemy's wrapping of `sqlite3`'s
    error, as every other path does, and the watchers have seen it, as they see every
    statement sent."""
    now = datetime(2030, 1, 1, tzinfo=UTC)
    async with sql_storage("sqlite", tmp_path) as store:
        with direct.watching(store.engine) as seen, pytest.raises(DBAPIError) as raised:
            async with Connections(store.engine).transaction() as conn:
                await direct.insert_rows(conn, insert(jobs), [job_row("j", now)])
                await direct.insert_rows(conn, insert(jobs), [job_row("j", now)])
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
    assert [sql.split()[0] for sql in seen] == ["BEGIN", "INSERT", "INSERT", "ROLLBACK"]
