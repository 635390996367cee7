"""SQLite for the async engine: each connection's own thread, and one trip to it per statement.

The stdlib `sqlite3` blocks, so an async program must call it from another
thread. aiosqlite (SQLAlchemy's `sqlite+aiosqlite`) gives each connection a
thread too, but SQLAlchemy's adapter over it makes four trips to that thread
per statement — open a cursor, execute, fetch the rows, close the cursor —
each a queue hand-off, an event-loop wake-up (a write to the loop's self-pipe)
and a greenlet switch. A py-spy profile of a SQLite worker under load put 44%
of its samples in the event loop and 41% in aiosqlite's thread, against 6% in
SQLAlchemy and 5% in wfc: the statements themselves cost little, the trips
cost most.

Here a trip runs a whole statement (`run_statement`): the thread opens a
cursor, executes, fetches every row and closes the cursor in one call, and
hands back the rows with the cursor's description, row count and last row id.
Where a statement runs — here, or on the event loop's thread with no trip at
all — is `sqlite_dbapi.Connection`'s decision.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class SqliteThread:
    """One `sqlite3` connection and the one thread that ever touches it.

    Calls run in the order they are made; each one's result (or error) comes back to
    the caller's event loop. A caller cancelled while its call runs does not stop it:
    the call completes (or fails) on the thread, as a statement sent to a server would.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="wfc-sqlite", daemon=True)
        self.connection: sqlite3.Connection | None = None
        self.closed = False
        # Whether the connection's busy_timeout is 0 now, as `sqlite_dbapi`'s `unless_busy` left
        # it; calls on this thread that may wait for the file's lock put it back first (`_waiting`).
        self.busy_off = False

    async def open(self) -> None:
        self._thread.start()
        self.connection = await self.call(self._connect)

    def _serve(self) -> None:
        while True:
            item = self._calls.get()
            if item is _STOP:
                return
            loop, future, function = item
            try:
                result = function()
            except BaseException as error:  # handed to the caller, whatever it is
                loop.call_soon_threadsafe(_settle, future, None, error)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    async def call(self, function: Callable[[], T]) -> T:
        """`function()` run on this connection's thread."""
        if self.closed:
            raise sqlite3.OperationalError("connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, function))
        return await future

    def on_connection(self, function: Callable[..., T], *args: Any) -> Callable[[], T]:
        """`function(connection, *args)` as a call for `call()`."""
        return partial(_with_connection, self, function, *args)

    async def close(self) -> None:
        if self.closed:
            return
        try:
            await self.call(self.on_connection(sqlite3.Connection.close))
        finally:
            self.stop()

    def stop(self) -> None:
        """End the thread once the calls already queued have run (no wait)."""
        self.closed = True
        self._calls.put(_STOP)


def _with_connection(thread: SqliteThread, function: Callable[..., T], *args: Any) -> T:
    if thread.connection is None:
        raise sqlite3.OperationalError("no active connection")
    return function(thread.connection, *args)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# What one trip brings back: description, rows, row count, last row id.
Outcome = tuple[Any, list[Any], int, int | None]


def run_statement(connection: sqlite3.Connection, sql: str, parameters: Any) -> Outcome:
    """Execute `sql` and read all it returns, in one call.

    `Connection.execute` makes the cursor itself (one call, not `cursor()` then
    `execute()`), and the cursor is not closed: every row is read here, so SQLite has
    already reset the statement, and the cursor goes when this returns (or with the
    exception of a statement that failed, which SQLite reset too)."""
    cursor = connection.execute(sql, () if parameters is None else parameters)
    description = cursor.description
    rows = cursor.fetchall() if description else []
    return description, rows, cursor.rowcount, cursor.lastrowid


def run_many(connection: sqlite3.Connection, sql: str, rows: Sequence[Any]) -> Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(sql, rows)
        return None, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()
