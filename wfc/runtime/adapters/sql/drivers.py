"""The driver connection under a SQLAlchemy connection, and SQL sent on it.

`direct` runs its statements on the driver: asyncpg's connection, or on SQLite
`sqlite_driver.SqliteDriver` over the connection `sqlite_dbapi` gives each
engine. Finding that driver through SQLAlchemy (`conn.info`, `conn.dialect`:
each a chain of properties down to the pooled connection's record) cost more
per statement than converting its parameters, so what `direct` needs of a
connection is looked up once per checkout and kept with it (`Link`).

An error from the driver comes wrapped in SQLAlchemy's `DBAPIError` (the
driver's own as `.orig`), as on SQLAlchemy's path, so callers catch one family
of errors; a connection the server closed is invalidated as SQLAlchemy would.
`watching(engine)` sees every statement sent either way, for the tests and the
benchmark that count round trips.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wfc.runtime.adapters.sql.compiled import Compiled
from wfc.runtime.adapters.sql.sqlite_dbapi import Connection as SqliteConnection
from wfc.runtime.adapters.sql.sqlite_driver import SqliteDriver
from wfc.runtime.adapters.sql.sqlite_thread import Outcome

_DRIVER_KEY = "wfc_driver_connection"  # in the pooled connection's `info`: kept across checkouts
_LINK = "_wfc_link"  # the pooled connection's attribute that holds its `Link`


class Link:
    """What `direct` needs of one SQLAlchemy connection, looked up once: its driver
    connection (None where statements go through SQLAlchemy), whether that is SQLite's,
    its dialect, its pool (which `watching` keys by) and its `info` (the pooled
    connection's, which `conn.info` reaches through four properties: PostgreSQL's held
    writes are read there for every statement). The pooled record keeps the one `info`
    dict for the DBAPI connection's life (cleared in place when it is invalidated), and
    a `Link` lives no longer than that connection."""

    __slots__ = ("dialect", "driver", "info", "pool", "sqlite")

    def __init__(
        self, driver: Any | None, dialect: Dialect, pool: object, info: dict[Any, Any]
    ) -> None:
        self.driver: Any = driver
        self.sqlite: SqliteDriver | None = driver if driver.__class__ is SqliteDriver else None
        self.dialect = dialect
        self.pool = pool
        self.info = info


def kept(conn: AsyncConnection) -> Link | None:
    """The `Link` kept for `conn`, or None: then `link` finds it.

    It is kept on the pooled connection under `conn` (SQLAlchemy's `_ConnectionFairy`,
    one per checkout, which proxies any attribute it lacks to the driver's connection:
    hence its `__dict__`). A connection invalidated and replaced under `conn` is a new
    pooled connection, without a `Link` until `link` makes one for it."""
    sync = conn.sync_connection
    pooled = None if sync is None else sync._dbapi_connection
    if pooled is None:
        return None
    kept_link: Link | None = pooled.__dict__.get(_LINK)
    return kept_link


def dialect_name(conn: AsyncConnection) -> str:
    """`conn.dialect.name`, from its `Link` when it has one: `AsyncConnection.dialect` is
    three properties deep (about 1,000 instructions), and the stores ask which database
    they are on a dozen times a SQLite run."""
    found = kept(conn)
    name: str = (conn.dialect if found is None else found.dialect).name
    return name


async def link(conn: AsyncConnection) -> Link:
    """`conn`'s `Link`, found and kept for it (`kept` first: it needs no await)."""
    found = kept(conn)
    if found is not None:
        return found
    sync = conn.sync_connection
    pooled = None if sync is None else sync._dbapi_connection
    # SQLite's DBAPI connection (ours) keeps its `Link` for its whole life, so a checkout
    # of it finds the link without SQLAlchemy's chains of properties (`conn.info`,
    # `conn.dialect`: ~35 calls, once per checkout; a run checks out two or three).
    under: Any = None if pooled is None else pooled.dbapi_connection
    if under.__class__ is SqliteConnection and under.link is not None:
        pooled.__dict__[_LINK] = under.link
        return under.link  # type: ignore[no-any-return]
    driver = conn.info.get(_DRIVER_KEY)
    if driver is None:
        driver = await _find_driver(conn)
        if driver is not None:
            conn.info[_DRIVER_KEY] = driver
    made = Link(driver, conn.dialect, conn.sync_engine.pool, conn.info)
    if pooled is not None:
        pooled.__dict__[_LINK] = made
        if under.__class__ is SqliteConnection:
            under.link = made
    return made


def info_of(conn: AsyncConnection) -> dict[Any, Any]:
    """`conn.info`, from its `Link` when it has one."""
    found = kept(conn)
    return conn.info if found is None else found.info


async def _find_driver(conn: AsyncConnection) -> Any | None:
    """The driver connection under `conn` (asyncpg's, or `SqliteDriver`), or None where
    statements go through SQLAlchemy."""
    name = conn.dialect.driver
    if name not in ("asyncpg", "aiosqlite"):
        return None
    raw = await conn.get_raw_connection()
    if name == "asyncpg":
        return raw.driver_connection
    if isinstance(raw.dbapi_connection, SqliteConnection):
        return SqliteDriver(raw.dbapi_connection)
    return None  # an engine not made by `engine.create_engine`


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


def sent(pool: object, sql: str) -> None:
    """Tell the watchers of `pool` (if any) that `sql` is being sent."""
    if _WATCHERS:
        # Keyed by pool: an engine with other execution options shares its parent's.
        for watcher in _WATCHERS.get(id(pool), ()):
            watcher(sql)


# -- sending ------------------------------------------------------------------------------


async def on_asyncpg(
    conn: AsyncConnection, link: Link, sql: str, args: list[Any], *, rows: bool
) -> Any:
    """`sql` on asyncpg's connection: its records, or its status."""
    sent(link.pool, sql)
    driver = link.driver
    try:
        return await (driver.fetch(sql, *args) if rows else driver.execute(sql, *args))
    except BaseException as error:
        raise await failed(conn, link, sql, args, error) from error


def at_once(
    conn: AsyncConnection, link: Link, compiled: Compiled, args: list[Any]
) -> Outcome | Awaitable[Outcome]:
    """`compiled` run on SQLite: its outcome now, by a plain call, where `on_sqlite` would
    run it at once anyway (`run_within`: inside this process's write transaction, not its
    COMMIT nor ROLLBACK) and nobody is `watching`; anywhere else the coroutine to await
    for it (`on_sqlite`), and for a statement the driver refused, the coroutine that
    raises `failed`'s wrapping of the error, as `on_sqlite` raises it. The caller awaits
    what is not an outcome (`tuple`).

    Most statements of a stage take the plain call, and each saved the coroutine
    `on_sqlite` is (made, awaited, finished: about 750 instructions a statement, 25 a
    SQLite `seq3` run)."""
    if compiled.ends_transaction or _WATCHERS:
        return on_sqlite(conn, link, compiled, args)
    sqlite: Any = link.sqlite
    try:
        outcome: Outcome | None = sqlite.run_within(compiled.sql, args)
    except BaseException as error:
        return _raise_failed(conn, link, compiled.sql, args, error)
    return on_sqlite(conn, link, compiled, args) if outcome is None else outcome


async def _raise_failed(
    conn: AsyncConnection, link: Link, sql: str, args: list[Any], error: BaseException
) -> Outcome:
    raise await failed(conn, link, sql, args, error) from error


async def on_sqlite(
    conn: AsyncConnection, link: Link, statement: Compiled | str, args: list[Any]
) -> Outcome:
    """`statement` on SQLite: `sqlite_thread`'s outcome as it is, for the caller to read the
    rows or the count it needs from it. A compiled statement inside this process's write
    transaction (most statements) runs at once, without a coroutine of the driver's
    (`run_within`); SQL given as text (BEGIN, COMMIT, ROLLBACK) goes where `run` puts it."""
    sqlite: Any = link.sqlite
    if statement.__class__ is Compiled:
        sql, within = statement.sql, not statement.ends_transaction
    else:
        sql, within = statement, False  # type: ignore[assignment]  # text (checked: faster)
    if _WATCHERS:
        sent(link.pool, sql)
    try:
        outcome: Outcome | None = sqlite.run_within(sql, args) if within else None
        return outcome if outcome is not None else await sqlite.run(sql, args)
    except BaseException as error:
        raise await failed(conn, link, sql, args, error) from error


async def failed(
    conn: AsyncConnection, link: Link, sql: str, args: list[Any], error: BaseException
) -> BaseException:
    """What to raise for `error` from the driver: SQLAlchemy's wrapping of it, as its own
    path raises, so callers catch one family whichever path ran; the connection
    invalidated if the driver found it closed."""
    closed = link.driver.is_closed()
    if closed:
        await conn.invalidate()
    if not isinstance(error, Exception):
        return error
    wrapped: BaseException = DBAPIError.instance(
        sql, args, error, Exception, connection_invalidated=closed
    )
    return wrapped
