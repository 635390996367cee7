"""The DBAPI SQLAlchemy's SQLite dialect drives, over `sqlite_thread`, and few trips to it.

Most statements make no trip to the connection's thread at all
(`Connection.runs_inline`, `unless_busy`): a statement inside a write
transaction runs on the event loop's thread, and one outside a transaction is
tried there first with the busy handler off, going to the thread only to wait
for another process's lock. Under `synchronous=NORMAL` the COMMIT runs there
too (it syncs nothing in WAL mode; the checkpoints that would are run on the
thread instead), so a transaction makes no trip; under `full` it is one trip,
its COMMIT. The process's writers take turns (`WriteTurns`), so none waits on
another's lock in SQLite's busy handler. The connection object SQLAlchemy sees
is a plain DBAPI connection over that (the one the aiosqlite dialect would see,
so the dialect, its SQL and its type handling are unchanged); `direct` runs its
statements through the same `Connection.run` (`sqlite_driver`), without
SQLAlchemy's execution layer, and inside a write transaction through
`Connection.run_within`, without a coroutine.

The engine keeps the `sqlite+aiosqlite` URL users write: `create_engine`
passes this module as the dialect's DBAPI (`dbapi()`), so aiosqlite itself is
no longer used on this path.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

from sqlalchemy.connectors.asyncio import (
    AsyncAdapt_dbapi_connection,
    AsyncAdapt_dbapi_module,
    AsyncAdapt_terminate,
)
from sqlalchemy.util import await_only

from wfc.runtime.adapters.sql import sqlite_thread
from wfc.runtime.adapters.sql.sqlite_thread import Outcome, SqliteThread, run_many
from wfc.runtime.adapters.sql.sqlite_writes import Checkpoints, Turn, WriteTurns

T = TypeVar("T")


def _checkpoint(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _busy_timeout_ms(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA busy_timeout").fetchone()[0])


def _unless_busy(thread: SqliteThread, call: Callable[[], Outcome]) -> Outcome | None:
    connection = thread.connection
    if connection is None:
        return call()  # raises as a closed connection does
    if not thread.busy_off:
        # Left off after the call: the next one tried here needs it off too, and a call that
        # may wait puts it back on the connection's thread (`_waiting`). Setting it around
        # each call cost two statements per transaction's BEGIN.
        connection.execute("PRAGMA busy_timeout=0")
        thread.busy_off = True
    try:
        return call()
    except sqlite3.OperationalError as error:
        if error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
            return None
        raise


def _waiting(thread: SqliteThread, busy_ms: int | None, call: Callable[[], T]) -> T:
    """`call` on the connection's thread, with SQLite's busy handler as configured: there a
    statement may wait for another process's lock."""
    connection = thread.connection
    if thread.busy_off and connection is not None and busy_ms is not None:
        connection.execute(f"PRAGMA busy_timeout={busy_ms}")
        thread.busy_off = False
    return call()


class Cursor:
    """The DBAPI cursor SQLAlchemy drives (inside its greenlet): each execute runs where
    `Connection` says (here, or one trip to the thread), and the rows are then read from
    memory."""

    server_side = False

    def __init__(self, adapted: Connection) -> None:
        self._adapted = adapted
        self._rows: collections.deque[Any] = collections.deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    def _run(self, function: Callable[..., Outcome], sql: str, parameters: Any) -> None:
        adapted = self._adapted
        try:
            outcome = await_only(adapted.run(function, sql, parameters))
        except Exception as error:
            adapted._handle_exception(error)
        self.description, rows, self.rowcount, self.lastrowid = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: str, parameters: Any = None) -> None:
        self._run(sqlite_thread.run_statement, operation, parameters)

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> None:
        self._run(run_many, operation, seq_of_parameters)

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def setinputsizes(self, *_sizes: Any) -> None:
        pass

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        """SQLAlchemy's async result asks this of the cursor: here nothing stays open."""


class Connection(AsyncAdapt_terminate, AsyncAdapt_dbapi_connection):
    """The DBAPI connection SQLAlchemy's SQLite dialect sees, over a `SqliteThread`."""

    __slots__ = ("_busy_ms", "_holding", "_writes", "link", "thread")
    _cursor_cls = Cursor  # type: ignore[assignment]
    _ss_cursor_cls = Cursor  # type: ignore[assignment]  # no server-side cursors: rows are read whole

    def __init__(self, dbapi: Module, thread: SqliteThread) -> None:
        super().__init__(dbapi, thread)  # type: ignore[arg-type]  # its own kind of connection
        # The `SqliteThread` SQLAlchemy's adapter keeps as `_connection`, typed, as a plain
        # attribute: it is read several times per statement.
        self.thread = thread
        self._writes = dbapi.writes
        self._holding: Turn | None = None
        self._busy_ms: int | None = None  # the connection's busy_timeout, read once
        # `drivers.Link` of this connection, made at its first checkout, kept for the others.
        self.link: Any = None

    async def run(self, function: Callable[..., Outcome], sql: str, parameters: Any) -> Outcome:
        """`function(connection, sql, parameters)` (`run_statement` or `run_many`) where it
        belongs: here, or one trip to the connection's thread; in this process's turn to
        write if `sql` writes. Both SQLAlchemy's cursor and `direct`'s runner come here."""
        if self._holding is not None:
            # Inside this process's write transaction (nearly every statement of a stage):
            # what `runs_inline` decides, without its calls, in the event loop's thread.
            connection = self.thread.connection
            if connection is not None and connection.in_transaction and not self.thread.closed:
                if self.dbapi.commits_inline or not _ends_transaction(sql):
                    try:
                        outcome = function(connection, sql, parameters)
                    finally:
                        self.release_write_lock_after_transaction()  # if it ended
                    if self._holding is None:  # it committed (or rolled back)
                        await self._checkpoint_now_and_then()
                    return outcome
        elif _writes(sql) and not self._in_transaction():
            # (In a transaction begun without a BEGIN statement of ours: not ours to order.)
            self._holding = await self._writes.acquire()
        thread = self.thread
        writing = self._holding is not None
        try:
            # `runs_inline` and `may_try_inline`, written out (a BEGIN of each transaction
            # comes here): what they decide, without the calls.
            connection = thread.connection
            # (Inside this process's write transaction, the fast path above returned.)
            within = connection is not None and not thread.closed and connection.in_transaction
            if (
                function is sqlite_thread.run_statement
                and not within
                and connection is not None
                and self._busy_ms is not None
                and not _ends_transaction(sql)
            ):
                # `unless_busy` once the busy timeout is known: None, the file is locked by
                # another process; wait for it on the thread.
                tried = _unless_busy(thread, partial(function, connection, sql, parameters))
                if tried is None:
                    call = thread.on_connection(function, sql, parameters)
                    tried = await self._on_thread_waiting(call)
                outcome = tried
            else:
                outcome = await self._elsewhere(function, sql, parameters)
        finally:
            self.release_write_lock_after_transaction()
            if "busy_timeout" in sql:  # set by the statement itself: read it again when needed
                self._busy_ms = None
                thread.busy_off = False
        if writing and self._holding is None:  # a write committed (or rolled back)
            await self._checkpoint_now_and_then()
        return outcome

    async def _elsewhere(
        self, function: Callable[..., Outcome], sql: str, parameters: Any
    ) -> Outcome:
        """`run`'s rarer places: tried here after reading the busy timeout, or on the
        connection's thread."""
        call = self.thread.on_connection(function, sql, parameters)
        if self.runs_inline(sql):
            return call()
        if function is sqlite_thread.run_statement and self.may_try_inline(sql):
            tried = await self.unless_busy(call)
            # None: the file is locked by another process; wait for it on the thread.
            return tried if tried is not None else await self._on_thread_waiting(call)
        return await self._on_thread_waiting(call)

    def run_within(self, sql: str, parameters: Any) -> Outcome | None:
        """`run_statement` at once, on the event loop's thread, for a statement known not to
        end a transaction (not a COMMIT nor a ROLLBACK: `direct`'s compiled statements know
        it of themselves), where `run` would run it so without awaiting anything: inside
        this process's write transaction. None, having done nothing, anywhere else: then
        `run` it. Most statements of a stage (all but the BEGIN and the COMMIT) so cost no
        coroutine of the driver's on top of SQLite's call."""
        if self._holding is None:
            return None
        thread = self.thread
        connection = thread.connection
        if connection is None or thread.closed or not connection.in_transaction:
            return None
        try:
            # `sqlite_thread.run_statement`, written out: one call fewer per statement.
            # `parameters` is never None here (`drivers.on_sqlite` passes a list), so its
            # `()` for None is not repeated.
            cursor = connection.execute(sql, parameters)
            description = cursor.description
            rows = cursor.fetchall() if description else []
            return description, rows, cursor.rowcount, cursor.lastrowid
        finally:
            if not connection.in_transaction:  # an error SQLite rolled the transaction back for
                self.release_write_lock_after_transaction()

    async def _checkpoint_now_and_then(self) -> None:
        """The WAL checkpoint SQLite's automatic one would have run, on the connection's
        thread, once every `Checkpoints.every` commits of the process (see `runs_inline`).
        After the turn to write is given back: a PASSIVE checkpoint waits for no one, and
        no one waits for it. Its failure (the file busy) fails nothing: the next one
        copies what this one did not."""
        checkpoints = self.dbapi.checkpoints
        if checkpoints is None or not checkpoints.due():
            return
        thread = self.thread
        with contextlib.suppress(sqlite3.Error):
            await thread.call(thread.on_connection(_checkpoint))

    def runs_inline(self, sql: str) -> bool:
        """Whether `sql` runs on the event loop's thread, not the connection's: inside a
        write transaction this process holds, anything but its end.

        Once `BEGIN IMMEDIATE` returns, the file's write lock is this connection's until
        it commits, and in WAL mode nothing else can make a statement wait: no lock to
        wait for (readers never block a writer), and no sync of the disk before COMMIT
        (a transaction larger than SQLite's page cache writes pages to the WAL early,
        unsynced). Such a statement costs SQLite tens of microseconds; a trip to the
        connection's thread and back costs more than that in wake-ups alone, and while
        one is under way every other writer of the process waits for the turn. The
        BEGIN is tried here first (`may_try_inline`).

        The COMMIT (and ROLLBACK) too, under `synchronous=NORMAL` (`Module.commits_inline`):
        in WAL mode it then appends the transaction's last frame to the WAL and syncs
        nothing. What could sync, SQLite's automatic checkpoint, is off for those
        connections (`wal_autocheckpoint=0`) and run on the connection's thread instead,
        every so many commits (`_checkpoint_now_and_then`). Under `synchronous=FULL` a
        COMMIT syncs the WAL, and goes to the thread."""
        if self._holding is None or not self._in_transaction():
            return False
        return self.dbapi.commits_inline or not _ends_transaction(sql)

    def may_try_inline(self, sql: str) -> bool:
        """Whether `sql`, outside a transaction of ours, is first tried on the event loop's
        thread without waiting for the file's lock (`unless_busy`): a BEGIN, or a
        statement on its own; not a COMMIT or ROLLBACK, which may sync the disk, nor
        anything inside a transaction this connection did not begin as a writer."""
        return not _ends_transaction(sql) and not self._in_transaction()

    async def unless_busy(self, call: Callable[[], Outcome]) -> Outcome | None:
        """`call` with SQLite's busy handler off: None, having done nothing, if another
        process holds the lock the statement needs.

        A read in WAL mode never waits, a BEGIN IMMEDIATE or a one-statement write waits
        only for another process (this one's writers take turns), so nearly every such
        statement runs here at once, for the cost of setting `busy_timeout` around it.
        One that would wait is sent to the connection's thread to wait there, where
        the event loop does not wait with it. Only a single statement is tried: it
        fails before it changes anything, so sending it again is safe."""
        if self._busy_ms is None:
            thread = self.thread
            self._busy_ms = await self._on_thread_waiting(thread.on_connection(_busy_timeout_ms))
        return _unless_busy(self.thread, call)

    async def _on_thread_waiting(self, call: Callable[[], T]) -> T:
        """`call` on the connection's thread, the busy handler on (`_waiting`)."""
        thread = self.thread
        return await thread.call(partial(_waiting, thread, self._busy_ms, call))

    def release_write_lock_after_transaction(self) -> None:
        """After a statement, commit or rollback: give the turn to write back once this
        connection is outside any transaction (or closed)."""
        if self._holding is None or self._in_transaction():
            return
        holding, self._holding = self._holding, None
        holding.release()

    def _on_thread(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await_only(self.thread.call(self.thread.on_connection(function, *args)))
        except Exception as error:
            self._handle_exception(error)

    @property
    def isolation_level(self) -> str | None:
        connection = self.thread.connection
        return None if connection is None else connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._on_thread(setattr, "isolation_level", value)

    def create_function(self, *args: Any, **kw: Any) -> None:
        self._on_thread(partial(_create_function, kw=kw), *args)

    def _in_transaction(self) -> bool:
        connection = self.thread.connection
        return connection is not None and not self.thread.closed and connection.in_transaction

    def commit(self) -> None:
        self._end("COMMIT")

    def rollback(self) -> None:
        # The pool rolls back every connection given back to it: most are in no transaction.
        self._end("ROLLBACK")

    def _end(self, sql: str) -> None:
        """COMMIT or ROLLBACK, as a statement (the driver's transaction control is off), where
        `run` puts it; nothing at all outside a transaction."""
        try:
            if self._in_transaction():
                await_only(self.run(sqlite_thread.run_statement, sql, None))
        except Exception as error:
            self._handle_exception(error)
        finally:
            self.release_write_lock_after_transaction()

    def close(self) -> None:
        try:
            await_only(self.thread.close())
        except Exception as error:
            self._handle_exception(error)
        finally:
            self.release_write_lock_after_transaction()

    async def _terminate_graceful_close(self) -> None:
        try:
            await self.thread.close()
        finally:
            self.release_write_lock_after_transaction()

    def _terminate_force_close(self) -> None:
        self.thread.stop()
        self.release_write_lock_after_transaction()


# Statements that read only: they never wait for the write lock in WAL mode, so they need no
# turn. Anything else (a write, BEGIN, DDL) takes one, at worst needlessly.
_READS = ("SELECT", "PRAGMA", "EXPLAIN", "COMMIT", "ROLLBACK", "END", "RELEASE")


def _writes(sql: str) -> bool:
    return not _start_of(sql).startswith(_READS)


def _ends_transaction(sql: str) -> bool:
    return _start_of(sql).startswith(("COMMIT", "END", "ROLLBACK"))


@functools.lru_cache(maxsize=1024)
def _start_of(sql: str) -> str:
    """The first word of `sql`, upper case (statements are few and sent again and again)."""
    return sql.lstrip()[:8].upper()


def _create_function(connection: sqlite3.Connection, *args: Any, kw: dict[str, Any]) -> None:
    connection.create_function(*args, **kw)


class Module(AsyncAdapt_dbapi_module):
    """The DBAPI module the aiosqlite dialect is given in place of aiosqlite's: sqlite3's
    exceptions and constants, and connections over `SqliteThread`."""

    def __init__(self, busy_timeout_s: float, *, commits_inline: bool) -> None:
        super().__init__(sqlite3, dbapi_module=sqlite3)
        self.writes = WriteTurns(busy_timeout_s)
        # COMMIT on the event loop's thread, checkpoints on the connections' (`runs_inline`).
        self.commits_inline = commits_inline
        self.checkpoints = Checkpoints() if commits_inline else None
        self._opened: set[str] = set()  # database files a connection was opened to
        self.sqlite = sqlite3
        self.paramstyle = "qmark"
        self.has_stop = True  # connections can be ended without a trip (`terminate`)
        for name in _FROM_SQLITE3:
            setattr(self, name, getattr(sqlite3, name))

    def connect(self, *args: Any, **kw: Any) -> Connection:
        kw.pop("async_creator_fn", None)
        kw["check_same_thread"] = False  # opened on its thread, closed by it: but say so
        args = self._existing_only(args, kw)
        thread = SqliteThread(partial(sqlite3.connect, *args, **kw))
        try:
            await_only(thread.open())
        except BaseException:
            thread.stop()
            raise
        if args and isinstance(args[0], str) and args[0] not in ("", ":memory:"):
            if not kw.get("uri"):
                self._opened.add(args[0])
        return Connection(self, thread)

    def _existing_only(self, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[Any, ...]:
        """The first connection to a file may create it (a new database, migrated on first
        use); every later one opens it read-write only if it exists. Otherwise a file
        deleted under a running worker came back, empty, at the pool's next connection:
        the worker then saw it "replaced" rather than deleted, and any other process an
        empty database where the runs had been."""
        if not args or not isinstance(args[0], str) or args[0] not in self._opened:
            return args
        kw["uri"] = True
        return (f"file:{quote(args[0])}?mode=rw", *args[1:])


# What the dialect reads from its DBAPI module (as SQLAlchemy's aiosqlite adapter copies them).
_FROM_SQLITE3 = (
    "DatabaseError",
    "Error",
    "IntegrityError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "sqlite_version",
    "sqlite_version_info",
    "PARSE_COLNAMES",
    "PARSE_DECLTYPES",
    "Binary",
)


def dbapi(busy_timeout_s: float, *, commits_inline: bool = False) -> Module:
    """A DBAPI module for one engine (its connections take turns to write: `WriteTurns`).
    `commits_inline`: the engine's connections run `synchronous=NORMAL` in WAL mode with
    `wal_autocheckpoint=0`, so a COMMIT syncs nothing and runs on the event loop's thread."""
    return Module(busy_timeout_s, commits_inline=commits_inline)
