"""The hot statements, run on the driver connection itself instead of through SQLAlchemy.

A stage execution sends about a dozen statements, and on PostgreSQL most of a
worker's CPU went into SQLAlchemy's execution layer around them, not into the
database: one `UPDATE … RETURNING` of a run row cost 0.35 ms of worker CPU
through `AsyncConnection.execute` and 0.06 ms through asyncpg's own `fetch`
(a loop of 3,000 on a 2-core machine, PostgreSQL local). So the statements
every stage runs are still SQLAlchemy constructs, built once
(`rows.built_once`), but they are compiled once for the connection's dialect
(`compiled`) and run on the driver connection (`drivers`) with the same bind
and result processors SQLAlchemy would apply: values go in and come out as
they would through `conn.execute`.

Both databases take this path: asyncpg's connection, and on SQLite
`sqlite_driver.SqliteDriver` over the connection `sqlite_dbapi` gives each
engine. What differs by dialect is the SQL the statement compiles to and
which columns need a conversion on the way out: asyncpg decodes the built-in
types itself, the stdlib `sqlite3` returns text and integers for them. On any
other driver, and for statements it cannot run as compiled (expanding `IN`
lists), each function is a plain `conn.execute`. Either way the rows come back
as mappings keyed by result column name, and errors as SQLAlchemy's
`DBAPIError` (`drivers.failed`).

Inside a transaction on asyncpg (PostgreSQL only: `on_driver`), a write whose result nobody reads can be
`defer`red: it is held and sent with the transaction's next statement, as a
data-modifying CTE of it when the two touch disjoint tables (`combine`), else
joined with the other held writes into one statement just before it. Either
way it runs before anything that could see it, and an error in it fails the
statement it travels with, inside the same transaction. Statements that go
through SQLAlchemy send the held writes first too (`before_cursor_execute`).
BEGIN waits the same way, for the first statement that must reach the server:
a transaction of held writes alone (a run created with its first event and its
idempotency key's result) is one statement, atomic on its own, with neither
BEGIN nor COMMIT. On SQLite nothing is held: a statement is a call, not a
round trip, and each one runs as it comes (inside this process's write transaction,
by a plain call: `drivers.at_once`).

`watching(engine)` sees every statement sent either way, for the tests and the
benchmark that count round trips.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable, Insert
from sqlalchemy.util import await_only

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import combine, drivers, multi_row
from wfc.runtime.adapters.sql.compiled import Compiled, Row, compiled_for
from wfc.runtime.adapters.sql.drivers import Link, at_once, on_asyncpg, on_sqlite, sent

_HELD_KEY = "wfc_held_writes"

watching = drivers.watching  # what tests and the benchmark see, as `direct.watching`


def render(
    conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    """`statement`'s SQL for asyncpg and its arguments, converted as `fetch` would send them."""
    compiled = compiled_for(statement, conn.dialect)
    if compiled is None:
        raise ValueError("a statement with an expanding IN list is rendered per call")
    return compiled.sql, compiled.args(params)


def on_driver(conn: AsyncConnection) -> bool:
    """Whether `conn` takes the PostgreSQL driver path's extras: writes held for the next
    statement, transactions predicted into one statement, writes joined as CTEs (asyncpg).
    Statements run on the driver on SQLite too, one by one."""
    link = drivers.kept(conn)  # (its dialect: `conn.dialect` is three properties deep)
    return (conn.dialect if link is None else link.dialect).driver == "asyncpg"


def _held(conn: AsyncConnection) -> combine.Held | None:
    """The writes held on `conn` (asyncpg), or None. A connection known to be SQLite's
    holds none, and is not asked (each `info` lookup is a chain of properties)."""
    link = drivers.kept(conn)
    if link is not None and link.sqlite is not None:
        return None
    held: combine.Held | None = (conn if link is None else link).info.get(_HELD_KEY)
    return held


# -- running statements -----------------------------------------------------------------


async def fetch(
    conn: AsyncConnection, statement: Executable, params: Mapping[str, Any] | None = None
) -> list[Row]:
    """The rows `statement` returns (a SELECT, or DML with RETURNING)."""
    params = params or {}
    link = drivers.kept(conn) or await drivers.link(conn)
    compiled = None if link.driver is None else compiled_for(statement, link.dialect)
    if compiled is None:
        return [row._mapping for row in await conn.execute(statement, dict(params))]
    if link.sqlite is not None:
        ran = at_once(conn, link, compiled, compiled.args(params))
        description, rows, _count, _rowid = ran if isinstance(ran, tuple) else await ran
        return compiled.rows_of(description, rows) if description else []
    held = link.info.get(_HELD_KEY)
    if held is not None:
        compiled, params = await _with_held(conn, link, held, statement, params, compiled)
    records = await on_asyncpg(conn, link, compiled.sql, compiled.args(params), rows=True)
    return [compiled.row(record) for record in records]


async def first(
    conn: AsyncConnection, statement: Executable, params: Mapping[str, Any] | None = None
) -> Row | None:
    """The first row `statement` returns, or None."""
    rows = await fetch(conn, statement, params)
    return rows[0] if rows else None


async def execute(
    conn: AsyncConnection, statement: Executable, params: Mapping[str, Any] | None = None
) -> int:
    """Run a statement whose rows are not wanted; the number of rows it changed."""
    params = params or {}
    link = drivers.kept(conn) or await drivers.link(conn)
    compiled = None if link.driver is None else compiled_for(statement, link.dialect)
    if compiled is None:
        return int((await conn.execute(statement, dict(params))).rowcount)
    if link.sqlite is not None:
        ran = at_once(conn, link, compiled, compiled.args(params))
        _description, _rows, changed, _rowid = ran if isinstance(ran, tuple) else await ran
        return max(changed, 0)
    held = link.info.get(_HELD_KEY)
    if held is not None:
        compiled, params = await _with_held(conn, link, held, statement, params, compiled)
    status: str = await on_asyncpg(conn, link, compiled.sql, compiled.args(params), rows=False)
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0


async def insert_rows(
    conn: AsyncConnection,
    statement: Executable,
    rows: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any] | None = None,
) -> list[Row]:
    """Insert `rows` (all with the same keys) with an INSERT construct, in one statement;
    the rows it returns when it has RETURNING (key them by a column: the order is the
    database's). `extra`: the values of the statement's other parameters (its CTEs'),
    on the driver path only (`on_driver`): SQLAlchemy's executemany binds row keys alone."""
    if not rows:
        return []
    link = drivers.kept(conn) or await drivers.link(conn)
    keys = tuple(rows[0]) if link.sqlite is None else multi_row.keys_bound(statement, rows)
    with_rows, names = multi_row.with_rows(statement, keys, len(rows))
    compiled = None if link.driver is None else compiled_for(with_rows, link.dialect)
    if compiled is None:
        if extra:
            raise ValueError("extra parameters need the driver path (direct.on_driver)")
        result = await conn.execute(statement, [dict(row) for row in rows])
        return [row._mapping for row in result.all()] if result.returns_rows else []
    returning = bool(getattr(statement, "exported_columns", ()))
    if link.sqlite is not None:
        ran = at_once(conn, link, compiled, compiled.rows_args(names, keys, rows, extra))
        description, found, _count, _rowid = ran if isinstance(ran, tuple) else await ran
        return compiled.rows_of(description, found) if returning and description else []
    held = link.info.get(_HELD_KEY)
    if held is not None:
        params: Mapping[str, Any] = multi_row.rows_params(names, keys, rows, extra)
        compiled, params = await _with_held(conn, link, held, with_rows, params, compiled)
        args = compiled.args(params)
    else:
        args = compiled.rows_args(names, keys, rows, extra)
    records = await on_asyncpg(conn, link, compiled.sql, args, rows=returning)
    return [compiled.row(record) for record in records] if returning else []


async def driver_sql(conn: AsyncConnection, sql: str) -> None:
    """A statement without parameters or rows (BEGIN, COMMIT, ROLLBACK)."""
    link = drivers.kept(conn) or await drivers.link(conn)
    if link.driver is None:
        await conn.exec_driver_sql(sql)
        return
    if link.sqlite is not None:
        await on_sqlite(conn, link, sql, [])
        return
    await _send(conn, link, sql, [], rows=False)


# -- writes held for the next statement ---------------------------------------------------


_HOOKED: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines that send held writes first


def hold_writes(conn: AsyncConnection, begin: str) -> bool:
    """Begin a transaction on `conn` in which `defer` holds writes until the next
    statement, and BEGIN itself waits for the first statement that must reach the
    server; `commit` or `rollback` ends it. False (nothing done) where writes cannot be
    held (not asyncpg): the caller sends `begin` itself."""
    if not on_driver(conn):
        return False
    drivers.info_of(conn)[_HELD_KEY] = combine.Held(begin=begin)
    engine = conn.engine.sync_engine
    if engine not in _HOOKED:  # (`event.contains` costs more than a statement)
        event.listen(engine, "before_cursor_execute", _send_held_first)
        _HOOKED.add(engine)
    return True


async def commit(conn: AsyncConnection) -> None:
    """Commit the transaction on `conn`. One whose statements were all held never sent
    its BEGIN: the held writes go as one statement, atomic on its own, with no COMMIT
    (a transaction of one write costs one round trip)."""
    held = _held(conn)
    if held is None or held.begin is None:
        await driver_sql(conn, "COMMIT")  # sends what is held first
    elif held.parts:
        # `begin` stays set: if this statement fails there is nothing to roll back.
        await _send_joined(conn, await drivers.link(conn), *held.statement())
    if held is not None:  # (none on SQLite, where `invalidated` is not worth asking)
        _stop_holding(conn)


async def rollback(conn: AsyncConnection) -> None:
    """Roll back the transaction on `conn`, dropping what is held; nothing is sent when
    nothing reached the server."""
    held = _held(conn)
    if held is not None:
        _stop_holding(conn)
    if held is None or held.begin is None:
        await driver_sql(conn, "ROLLBACK")


def predict(conn: AsyncConnection, reserved: frozenset[str] = frozenset()) -> bool:
    """Make the transaction on `conn`, which has sent nothing yet, one statement sent at its
    end (`send_predicted`): from now on every write is held, whatever it touches (none may
    write a table another writes), and a read raises `ExpectationFailed` — the caller
    answers reads from what it predicts, and checks the predictions in that statement.
    False (nothing done) where that cannot be: not asyncpg, or a statement already sent.
    `reserved`: tables the statement writes itself, which no held write may."""
    held = _held(conn)
    if held is None or held.begin is None or held.parts:
        return False
    held.predicting = True
    held.writes |= reserved
    return True


def predicting(conn: AsyncConnection) -> bool:
    held = _held(conn)
    return held is not None and held.predicting


async def send_predicted(
    conn: AsyncConnection,
    compose: Callable[
        [list[tuple[combine.Part, Mapping[str, Any]]], list[int]],
        tuple[Executable, Mapping[str, Any]],
    ],
) -> None:
    """Send a predicting transaction as the one statement `compose` makes of its held
    writes (and the positions of those that must change a row). The statement is atomic
    on its own: no BEGIN, no COMMIT, and nothing to roll back if it fails."""
    held = drivers.info_of(conn)[_HELD_KEY]
    statement, params = compose(*held.take_predicted())
    held.predicting = False  # `commit` then sends nothing: the BEGIN never went
    await _send_joined(conn, await drivers.link(conn), statement, params, rows=True)


def _stop_holding(conn: AsyncConnection) -> None:
    if not conn.invalidated:
        drivers.info_of(conn).pop(_HELD_KEY, None)


async def _begin_first(conn: AsyncConnection, link: Link, held: combine.Held) -> None:
    """Send the transaction's BEGIN if it is still waiting: a statement is about to go."""
    begin = held.take_begin()
    if begin is not None:
        await on_asyncpg(conn, link, begin, [], rows=False)


async def defer(
    conn: AsyncConnection,
    statement: Executable,
    params: Mapping[str, Any] | None = None,
    *,
    expect_row: bool = False,
) -> None:
    """Run a write whose result is not wanted, now or with the transaction's next statement.
    `expect_row` (a statement with RETURNING, in a `predict`ing transaction only): the
    transaction fails at its commit unless the write changes a row."""
    params = params or {}
    held = _held(conn)
    part = None if held is None else combine.part_of(statement)
    if part is None and isinstance(statement, Insert) and held is not None:
        # An INSERT without `.values()`: as one row of explicit VALUES, it can be held.
        await defer_rows(conn, statement, [params])
        return
    if held is None or part is None:
        if held is not None and held.predicting:
            raise ExpectationFailed("a write that cannot join the transaction's one statement")
        await execute(conn, statement, params)
        return
    await _hold(conn, held, part, params, expect_row=expect_row)


async def defer_rows(
    conn: AsyncConnection,
    statement: Executable,
    rows: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """`insert_rows` for an INSERT without RETURNING, now or with the next statement."""
    held = _held(conn)
    if held is None or not rows:
        await insert_rows(conn, statement, rows, extra)
        return
    with_rows, params = multi_row.rows_statement(statement, rows, extra)
    part = combine.part_of(with_rows)
    if part is None:
        await insert_rows(conn, statement, rows, extra)
        return
    await _hold(conn, held, part, params)


async def _hold(
    conn: AsyncConnection,
    held: combine.Held,
    part: combine.Part,
    params: Mapping[str, Any],
    *,
    expect_row: bool = False,
) -> None:
    if held.predicting:
        if not held.admits_predicted(part):
            raise ExpectationFailed("a write that cannot join the transaction's one statement")
        held.add(part, params, expect_row=expect_row)
        return
    if not held.admits(part):  # the held writes go first, alone, so that this one can wait
        link = await drivers.link(conn)
        if held.begin is not None:
            await _begin_first(conn, link, held)
        await _send_joined(conn, link, *held.statement())
    held.add(part, params, expect_row=expect_row)


def _send_held_first(conn: Any, _cursor: Any, *_rest: Any) -> None:
    """SQLAlchemy is about to run a statement on `conn`: the held writes go first. (Called
    inside SQLAlchemy's greenlet, which can wait on the driver.)"""
    held = conn.info.get(_HELD_KEY)
    if held is None:
        return
    if held.predicting:
        raise ExpectationFailed("a statement to run before the transaction's one")
    begin = held.take_begin()
    statements: list[tuple[str, list[Any]]] = [(begin, [])] if begin is not None else []
    if held.parts:
        statements.append(_joined_sql(conn.dialect, *held.statement()))
    for sql, args in statements:
        sent(conn.engine.pool, sql)
        try:
            await_only(conn.connection.driver_connection.execute(sql, *args))
        except Exception as error:
            raise DBAPIError.instance(sql, args, error, Exception) from error


async def _send(conn: AsyncConnection, link: Link, sql: str, args: list[Any], *, rows: bool) -> Any:
    """Run `sql` on the driver: its records, or its status. A connection the server closed
    (a restart, a terminated backend) is invalidated, as SQLAlchemy does with the errors it
    sees, so the pool never hands it out again. Writes held on `conn` travel with `sql`, or
    just before it (`defer`)."""
    held = _held(conn)
    if held is not None:
        if held.predicting:  # the transaction answers from its predictions until it commits
            raise ExpectationFailed("a read in a transaction that predicts its reads")
        if held.begin is not None:
            await _begin_first(conn, link, held)
        if held.parts:
            await _send_joined(conn, link, *held.statement())
    return await on_asyncpg(conn, link, sql, args, rows=rows)


async def _with_held(
    conn: AsyncConnection,
    link: Link,
    held: combine.Held,
    statement: Executable,
    params: Mapping[str, Any],
    compiled: Compiled,
) -> tuple[Compiled, Mapping[str, Any]]:
    """`statement` about to be sent in a transaction that holds writes: the BEGIN goes
    first if it waited; then the statement carries the held writes as CTEs when it can
    (`combine.joined`), else they are sent just before it. What to send, compiled."""
    if held.predicting:  # the transaction answers from its predictions until it commits
        raise ExpectationFailed("a read in a transaction that predicts its reads")
    if held.begin is not None:  # (checked here: no coroutine per statement once sent)
        await _begin_first(conn, link, held)
    if not held.parts:
        return compiled, params
    carried = held.carried_by(statement, params)
    if carried is None:
        await _send_joined(conn, link, *held.statement())
        return compiled, params
    joined = compiled_for(carried[0], link.dialect)
    assert joined is not None, "parts and carriers bind no expanding IN list"
    return joined, carried[1]


def _joined_sql(
    dialect: Dialect, statement: Executable, params: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    compiled = compiled_for(statement, dialect)
    assert compiled is not None, "parts bind no expanding IN list"
    return compiled.sql, compiled.args(params)


async def _send_joined(
    conn: AsyncConnection,
    link: Link,
    statement: Executable,
    params: Mapping[str, Any],
    *,
    rows: bool = False,
) -> Any:
    """Send held writes joined as one statement (`combine.joined`), on their own."""
    sql, args = _joined_sql(link.dialect, statement, params)
    return await on_asyncpg(conn, link, sql, args, rows=rows)
