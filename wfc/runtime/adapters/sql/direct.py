"""The hot statements, run on the asyncpg connection itself instead of through SQLAlchemy.

A stage execution sends about a dozen statements, and on PostgreSQL most of a
worker's CPU went into SQLAlchemy's execution layer around them, not into the
database: one `UPDATE … RETURNING` of a run row cost 0.35 ms of worker CPU
through `AsyncConnection.execute` and 0.06 ms through asyncpg's own `fetch`
(a loop of 3,000 on a 2-core machine, PostgreSQL local). So the statements
every stage runs are still SQLAlchemy constructs, built once
(`rows.built_once`), but this module compiles each of them once for the
connection's dialect and runs the SQL on the driver connection with the same
bind and result processors SQLAlchemy would apply: values go in and come out as
they would through `conn.execute`.

Both databases take this path: asyncpg's connection, and on SQLite
`sqlite_driver.SqliteDriver` over the connection `sqlite_thread` gives each
engine (the same three calls: `fetch`, `execute`, `is_closed`). What differs
by dialect is the SQL the statement compiles to and which columns need a
conversion on the way out (`_Compiled`): asyncpg decodes the built-in types
itself, the stdlib `sqlite3` returns text and integers for them. On any other
driver, and for statements it cannot run as compiled (expanding `IN` lists),
each function is a plain `conn.execute`. Either way the rows come back as
mappings keyed by result column name. An error from the driver comes wrapped
in SQLAlchemy's `DBAPIError` (the driver's own as `.orig`), as on SQLAlchemy's
path, so callers catch one family of errors; a connection the server closed is
invalidated as SQLAlchemy would.

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
BEGIN nor COMMIT.

`watching(engine)` sees every statement sent either way, for the tests and the
benchmark that count round trips.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable, Insert
from sqlalchemy.types import JSON, TypeDecorator
from sqlalchemy.util import await_only

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import combine
from wfc.runtime.adapters.sql.schema import UtcDateTime
from wfc.runtime.adapters.sql.sqlite_driver import SqliteDriver
from wfc.runtime.adapters.sql.sqlite_thread import Connection as SqliteConnection
from wfc.runtime.adapters.sql.sqlite_thread import Outcome

Row = Mapping[Any, Any]  # keyed by result column name (a RowMapping on the SQLAlchemy path)
Processor = Callable[[Any], Any]

_DRIVER_KEY = "wfc_driver_connection"
_HELD_KEY = "wfc_held_writes"
_MAX_COMPILED = 512  # statements are built once, so this is never reached in practice


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled for a driver: its SQL, how to order and convert its parameters,
    and how to convert the columns it returns."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    bind_processors: tuple[Processor | None, ...]
    result_processors: dict[str, Processor]
    # SQLite: the result processors in the order of a result's columns, by column names.
    aligned: dict[tuple[str, ...], tuple[Processor | None, ...]] = field(default_factory=dict)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, process in zip(self.names, self.bind_processors, strict=True):
            value = params[name] if name in params else self.defaults[name]
            values.append(value if process is None or value is None else process(value))
        return values

    def row(self, record: Any) -> dict[str, Any]:
        processors = self.result_processors
        converted = {}
        for key, value in record.items():
            process = processors.get(key)
            converted[key] = value if process is None else process(value)
        return converted

    def rows_of(self, description: Sequence[Any], rows: list[Any]) -> list[Row]:
        """`sqlite3`'s rows (tuples, in `description`'s order) as converted mappings: one
        dict per row, built once (not a dict of the raw row, then a converted copy)."""
        names = tuple(column[0] for column in description)
        processors = self.aligned.get(names)
        if processors is None:
            processors = tuple(self.result_processors.get(name) for name in names)
            if len(self.aligned) < 8:  # one or two shapes per statement in practice
                self.aligned[names] = processors
        return [
            {
                name: value if process is None else process(value)
                for name, process, value in zip(names, processors, row, strict=True)
            }
            for row in rows
        ]


# -- SQLite's conversions, without SQLAlchemy's layers ---------------------------------
#
# On SQLite every instant and JSON value is converted in Python on the way in and out, and
# SQLAlchemy's processors for them are two or three calls deep (`UtcDateTime` over the
# dialect's DATETIME, JSON's sentinel checks). These do the same work in one call; values
# of any other kind take SQLAlchemy's own processor, and `tests/sql` checks that both agree.

_PLAIN_JSON = frozenset({dict, list, str, int, float, bool})
_NAIVE = "naive datetimes are not stored; use timezone-aware ones"


def _utc_text(value: Any) -> Any:
    """`UtcDateTime` bound for SQLite: the instant in UTC as DATETIME stores it."""
    zone = value.tzinfo
    if zone is not UTC:
        if zone is None:
            raise ValueError(_NAIVE)
        value = value.astimezone(UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff" (DATETIME's storage format) and the "+00:00" cut off.
    return value.isoformat(" ", "microseconds")[:26]


def _utc_from_text(value: Any) -> Any:
    if value is None:
        return None
    read = datetime.fromisoformat(value)
    return read.replace(tzinfo=UTC) if read.tzinfo is None else read.astimezone(UTC)


def _sqlite_bind(type_: Any, dialect: Dialect) -> Processor | None:
    """The bind processor for `type_` on SQLite: SQLAlchemy's, or the same in one call."""
    original: Processor | None = type_.dialect_impl(dialect).bind_processor(dialect)
    if original is None:
        return None
    if isinstance(type_, UtcDateTime):
        return _utc_text
    if isinstance(type_.dialect_impl(dialect), JSON):
        dumps: Processor = getattr(dialect, "_json_serializer", None) or json.dumps

        def json_text(value: Any) -> Any:
            return dumps(value) if value.__class__ in _PLAIN_JSON else original(value)

        return json_text
    return original


def _sqlite_result(type_: Any, dialect: Dialect) -> Processor | None:
    """The result processor for `type_` on SQLite: SQLAlchemy's, or the same in one call."""
    original: Processor | None = type_.dialect_impl(dialect).result_processor(dialect, None)
    if original is None:
        return None
    if isinstance(type_, UtcDateTime):
        return _utc_from_text
    if isinstance(type_.dialect_impl(dialect), JSON):
        loads: Processor = getattr(dialect, "_json_deserializer", None) or json.loads

        def json_value(value: Any) -> Any:
            return loads(value) if value.__class__ is str else original(value)

        return json_value
    return original


# Keyed by statement and dialect: the same construct compiles to `$1` for asyncpg, `?` for
# SQLite, and one process may use both.
_COMPILED: dict[tuple[int, str], tuple[Executable, _Compiled | None]] = {}


def _compile(statement: Executable, dialect: Dialect) -> _Compiled | None:
    """The statement for the dialect's driver, or None if it must go through SQLAlchemy."""
    element: Any = statement  # every Executable this module is given is a ClauseElement
    compiled: Any = element.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string:  # an expanding IN list: rendered per call
        return None
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[name] for name in names]
    result_processors: dict[str, Processor] = {}
    decodes_builtins = dialect.driver == "asyncpg"
    sqlite = dialect.name == "sqlite"
    for key, column in getattr(statement, "exported_columns", {}).items():
        # asyncpg already returns Python values for the built-in types (JSON through the
        # codec SQLAlchemy installs on each connection); only the schema's own types,
        # `TypeDecorator`s, have a conversion of their own to apply. `sqlite3` returns
        # text and integers: every column gets the conversion SQLAlchemy would apply.
        if decodes_builtins and not isinstance(column.type, TypeDecorator):
            continue
        if sqlite:
            process = _sqlite_result(column.type, dialect)
        else:
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            result_processors[str(key)] = process
    if sqlite:
        bind_processors = tuple(_sqlite_bind(b.type, dialect) for b in binds)
    else:
        bind_processors = tuple(b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds)
    return _Compiled(
        sql=compiled.string,
        names=names,
        defaults={
            n: b.effective_value for n, b in zip(names, binds, strict=True) if not b.required
        },
        bind_processors=bind_processors,
        result_processors=result_processors,
    )


def _compiled_for(statement: Executable, dialect: Dialect) -> _Compiled | None:
    key = (id(statement), dialect.name)
    entry = _COMPILED.get(key)
    if entry is not None and entry[0] is statement:
        return entry[1]
    compiled = _compile(statement, dialect)
    if len(_COMPILED) < _MAX_COMPILED:
        _COMPILED[key] = (statement, compiled)  # kept alive: ids stay valid
    return compiled


def render(
    conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    """`statement`'s SQL for asyncpg and its arguments, converted as `fetch` would send them."""
    compiled = _compiled_for(statement, conn.dialect)
    if compiled is None:
        raise ValueError("a statement with an expanding IN list is rendered per call")
    return compiled.sql, compiled.args(params)


def on_driver(conn: AsyncConnection) -> bool:
    """Whether `conn` takes the PostgreSQL driver path's extras: writes held for the next
    statement, transactions predicted into one statement, writes joined as CTEs (asyncpg).
    Statements run on the driver on SQLite too, one by one."""
    return conn.dialect.driver == "asyncpg"


async def _driver(conn: AsyncConnection) -> Any | None:
    """The driver connection under `conn` (asyncpg's, or `SqliteDriver`), or None where
    statements go through SQLAlchemy."""
    info = conn.info
    driver = info.get(_DRIVER_KEY)
    if driver is None:
        name = conn.dialect.driver
        if name not in ("asyncpg", "aiosqlite"):
            return None
        raw = await conn.get_raw_connection()
        if name == "asyncpg":
            driver = raw.driver_connection
        elif isinstance(raw.dbapi_connection, SqliteConnection):
            driver = SqliteDriver(raw.dbapi_connection)
        else:
            return None  # an engine not made by `engine.create_engine`
        info[_DRIVER_KEY] = driver
    return driver


# -- what tests and the benchmark see ---------------------------------------------------

_WATCHERS: dict[int, list[Callable[[str], None]]] = {}


@contextlib.contextmanager
def watching(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL of every statement sent on `engine` while the block runs, in order."""
    seen: list[str] = []

    def core(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    pool = id(engine.pool)  # `dispose()` gives the engine a new pool
    watchers = _WATCHERS.setdefault(pool, [])
    watchers.append(seen.append)
    event.listen(engine.sync_engine, "before_cursor_execute", core)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", core)
        watchers.remove(seen.append)
        if not watchers:
            _WATCHERS.pop(pool, None)


def _sent(pool: object, sql: str) -> None:
    if _WATCHERS:
        # Keyed by pool: an engine with other execution options shares its parent's.
        for watcher in _WATCHERS.get(id(pool), ()):
            watcher(sql)


# -- running statements -----------------------------------------------------------------


async def fetch(
    conn: AsyncConnection, statement: Executable, params: Mapping[str, Any] | None = None
) -> list[Row]:
    """The rows `statement` returns (a SELECT, or DML with RETURNING)."""
    params = params or {}
    driver = await _driver(conn)
    compiled = None if driver is None else _compiled_for(statement, conn.dialect)
    if driver is None or compiled is None:
        return [row._mapping for row in await conn.execute(statement, dict(params))]
    if driver.__class__ is SqliteDriver:
        description, rows, _count, _rowid = await _on_sqlite(
            conn, driver, compiled.sql, compiled.args(params)
        )
        return compiled.rows_of(description, rows) if description else []
    held = conn.info.get(_HELD_KEY)
    if held is not None:
        compiled, params = await _with_held(conn, driver, held, statement, params, compiled)
    records = await _on_driver(conn, driver, compiled.sql, compiled.args(params), rows=True)
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
    driver = await _driver(conn)
    compiled = None if driver is None else _compiled_for(statement, conn.dialect)
    if driver is None or compiled is None:
        return int((await conn.execute(statement, dict(params))).rowcount)
    if driver.__class__ is SqliteDriver:
        outcome = await _on_sqlite(conn, driver, compiled.sql, compiled.args(params))
        return max(outcome[2], 0)
    held = conn.info.get(_HELD_KEY)
    if held is not None:
        compiled, params = await _with_held(conn, driver, held, statement, params, compiled)
    status: str = await _on_driver(conn, driver, compiled.sql, compiled.args(params), rows=False)
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
    driver = await _driver(conn)
    with_rows, row_params = _rows_statement(statement, rows, extra)
    params: Mapping[str, Any] = row_params
    compiled = None if driver is None else _compiled_for(with_rows, conn.dialect)
    if driver is None or compiled is None:
        if extra:
            raise ValueError("extra parameters need the driver path (direct.on_driver)")
        result = await conn.execute(statement, [dict(row) for row in rows])
        return [row._mapping for row in result.all()] if result.returns_rows else []
    returning = bool(getattr(statement, "exported_columns", ()))
    if driver.__class__ is SqliteDriver:
        description, found, _count, _rowid = await _on_sqlite(
            conn, driver, compiled.sql, compiled.args(params)
        )
        return compiled.rows_of(description, found) if returning and description else []
    held = conn.info.get(_HELD_KEY)
    if held is not None:
        compiled, params = await _with_held(conn, driver, held, with_rows, params, compiled)
    records = await _on_driver(conn, driver, compiled.sql, compiled.args(params), rows=returning)
    return [compiled.row(record) for record in records] if returning else []


# -- writes held for the next statement ---------------------------------------------------


_HOOKED: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines that send held writes first


def hold_writes(conn: AsyncConnection, begin: str) -> bool:
    """Begin a transaction on `conn` in which `defer` holds writes until the next
    statement, and BEGIN itself waits for the first statement that must reach the
    server; `commit` or `rollback` ends it. False (nothing done) where writes cannot be
    held (not asyncpg): the caller sends `begin` itself."""
    if not on_driver(conn):
        return False
    conn.info[_HELD_KEY] = combine.Held(begin=begin)
    engine = conn.engine.sync_engine
    if engine not in _HOOKED:  # (`event.contains` costs more than a statement)
        event.listen(engine, "before_cursor_execute", _send_held_first)
        _HOOKED.add(engine)
    return True


async def commit(conn: AsyncConnection) -> None:
    """Commit the transaction on `conn`. One whose statements were all held never sent
    its BEGIN: the held writes go as one statement, atomic on its own, with no COMMIT
    (a transaction of one write costs one round trip)."""
    held = conn.info.get(_HELD_KEY)
    if held is None or held.begin is None:
        await driver_sql(conn, "COMMIT")  # sends what is held first
    elif held.parts:
        # `begin` stays set: if this statement fails there is nothing to roll back.
        await _send_joined(conn, await _driver(conn), *held.statement())
    _stop_holding(conn)


async def rollback(conn: AsyncConnection) -> None:
    """Roll back the transaction on `conn`, dropping what is held; nothing is sent when
    nothing reached the server."""
    held = conn.info.get(_HELD_KEY)
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
    held = conn.info.get(_HELD_KEY)
    if held is None or held.begin is None or held.parts:
        return False
    held.predicting = True
    held.writes |= reserved
    return True


def predicting(conn: AsyncConnection) -> bool:
    held = conn.info.get(_HELD_KEY)
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
    held = conn.info[_HELD_KEY]
    statement, params = compose(*held.take_predicted())
    held.predicting = False  # `commit` then sends nothing: the BEGIN never went
    await _send_joined(conn, await _driver(conn), statement, params, rows=True)


def _stop_holding(conn: AsyncConnection) -> None:
    if not conn.invalidated:
        conn.info.pop(_HELD_KEY, None)


async def _begin_first(conn: AsyncConnection, driver: Any, held: combine.Held) -> None:
    """Send the transaction's BEGIN if it is still waiting: a statement is about to go."""
    begin = held.take_begin()
    if begin is not None:
        await _on_driver(conn, driver, begin, [], rows=False)


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
    held = conn.info.get(_HELD_KEY)
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
    held = conn.info.get(_HELD_KEY)
    if held is None or not rows:
        await insert_rows(conn, statement, rows, extra)
        return
    with_rows, params = _rows_statement(statement, rows, extra)
    part = combine.part_of(with_rows)
    if part is None:
        await insert_rows(conn, statement, rows, extra)
        return
    await _hold(conn, held, part, params)


def _rows_statement(
    statement: Executable, rows: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None
) -> tuple[Executable, dict[str, Any]]:
    """A multi-row insert of `rows` (`_with_rows`) and its parameters: row n's value of
    `key` as `r{n}_{key}`, then `extra`. Explicit VALUES, not SQLAlchemy's `column_keys`:
    that would also rewrite the SET of an UPDATE in the statement's CTEs."""
    keys = tuple(rows[0])
    params = {f"r{n}_{key}": row[key] for n, row in enumerate(rows) for key in keys}
    params |= extra or {}
    return _with_rows(statement, keys, len(rows)), params


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
        driver = await _driver(conn)
        if held.begin is not None:
            await _begin_first(conn, driver, held)
        await _send_joined(conn, driver, *held.statement())
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
        _sent(conn.engine.pool, sql)
        try:
            await_only(conn.connection.driver_connection.execute(sql, *args))
        except Exception as error:
            raise DBAPIError.instance(sql, args, error, Exception) from error


_WITH_ROWS: dict[tuple[int, tuple[str, ...], int], tuple[Executable, Executable]] = {}


def _with_rows(statement: Executable, keys: tuple[str, ...], count: int) -> Executable:
    """`statement` with `count` rows of VALUES, row n's value of `key` bound as
    `r{n}_{key}`: one statement, built once per row count, for a multi-row insert."""
    entry = _WITH_ROWS.get((id(statement), keys, count))
    if entry is not None and entry[0] is statement:
        return entry[1]
    element: Any = statement
    columns = element.table.c  # typed: a multi-row VALUES binds no column type of its own
    rows: list[dict[str, Any]] = [
        {key: bindparam(f"r{n}_{key}", type_=columns[key].type) for key in keys}
        for n in range(count)
    ]
    derived: Executable = element.values(rows)
    if len(_WITH_ROWS) < _MAX_COMPILED:
        _WITH_ROWS[(id(statement), keys, count)] = (statement, derived)
    return derived


async def driver_sql(conn: AsyncConnection, sql: str) -> None:
    """A statement without parameters or rows (BEGIN, COMMIT, ROLLBACK)."""
    driver = await _driver(conn)
    if driver is None:
        await conn.exec_driver_sql(sql)
        return
    if driver.__class__ is SqliteDriver:
        await _on_sqlite(conn, driver, sql, [])
        return
    await _send(conn, driver, sql, [], rows=False)


async def _send(
    conn: AsyncConnection, driver: Any, sql: str, args: list[Any], *, rows: bool
) -> Any:
    """Run `sql` on the driver: its records, or its status. A connection the server closed
    (a restart, a terminated backend) is invalidated, as SQLAlchemy does with the errors it
    sees, so the pool never hands it out again. Writes held on `conn` travel with `sql`, or
    just before it (`defer`)."""
    held = conn.info.get(_HELD_KEY)
    if held is not None:
        if held.predicting:  # the transaction answers from its predictions until it commits
            raise ExpectationFailed("a read in a transaction that predicts its reads")
        if held.begin is not None:
            await _begin_first(conn, driver, held)
        if held.parts:
            await _send_joined(conn, driver, *held.statement())
    return await _on_driver(conn, driver, sql, args, rows=rows)


async def _with_held(
    conn: AsyncConnection,
    driver: Any,
    held: combine.Held,
    statement: Executable,
    params: Mapping[str, Any],
    compiled: _Compiled,
) -> tuple[_Compiled, Mapping[str, Any]]:
    """`statement` about to be sent in a transaction that holds writes: the BEGIN goes
    first if it waited; then the statement carries the held writes as CTEs when it can
    (`combine.joined`), else they are sent just before it. What to send, compiled."""
    if held.predicting:  # the transaction answers from its predictions until it commits
        raise ExpectationFailed("a read in a transaction that predicts its reads")
    if held.begin is not None:  # (checked here: no coroutine per statement once sent)
        await _begin_first(conn, driver, held)
    if not held.parts:
        return compiled, params
    carried = held.carried_by(statement, params)
    if carried is None:
        await _send_joined(conn, driver, *held.statement())
        return compiled, params
    joined = _compiled_for(carried[0], conn.dialect)
    assert joined is not None, "parts and carriers bind no expanding IN list"
    return joined, carried[1]


def _joined_sql(
    dialect: Dialect, statement: Executable, params: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    compiled = _compiled_for(statement, dialect)
    assert compiled is not None, "parts bind no expanding IN list"
    return compiled.sql, compiled.args(params)


async def _send_joined(
    conn: AsyncConnection,
    driver: Any,
    statement: Executable,
    params: Mapping[str, Any],
    *,
    rows: bool = False,
) -> Any:
    """Send held writes joined as one statement (`combine.joined`), on their own."""
    return await _on_driver(conn, driver, *_joined_sql(conn.dialect, statement, params), rows=rows)


async def _on_driver(
    conn: AsyncConnection, driver: Any, sql: str, args: list[Any], *, rows: bool
) -> Any:
    _sent(conn.engine.pool, sql)
    try:
        return await (driver.fetch(sql, *args) if rows else driver.execute(sql, *args))
    except BaseException as error:
        raise await _failed(conn, driver, sql, args, error) from error


async def _on_sqlite(
    conn: AsyncConnection, driver: SqliteDriver, sql: str, args: list[Any]
) -> Outcome:
    """`sql` on SQLite, where nothing is held (`hold_writes` is asyncpg's): `sqlite_thread`'s
    outcome as it is, for the caller to read the rows or the count it needs from it."""
    if _WATCHERS:
        _sent(conn.engine.pool, sql)
    try:
        return await driver.run(sql, args)
    except BaseException as error:
        raise await _failed(conn, driver, sql, args, error) from error


async def _failed(
    conn: AsyncConnection, driver: Any, sql: str, args: list[Any], error: BaseException
) -> BaseException:
    """What to raise for `error` from the driver: SQLAlchemy's wrapping of it, as its own
    path raises, so callers catch one family whichever path ran; the connection
    invalidated if the driver found it closed."""
    closed = driver.is_closed()
    if closed:
        await conn.invalidate()
    if not isinstance(error, Exception):
        return error
    wrapped: BaseException = DBAPIError.instance(
        sql, args, error, Exception, connection_invalidated=closed
    )
    return wrapped
