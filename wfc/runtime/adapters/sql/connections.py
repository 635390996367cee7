"""Where the SQL adapters' statements run: a connection pinned to the task, or one per call.

Checking a connection out of SQLAlchemy's async pool and back in costs about
as much CPU as running a statement on it (~0.2 ms), and one stage execution
makes a dozen port calls. `pinned()` lets a caller run a sequence of calls —
everything one job does, say — over one connection: calls made by the task
that pinned it use it, calls from any other task (a heartbeat, tasks a stage
body starts) check out their own, so a connection is never used by two tasks.

While the pinning task runs user code (a stage body) it `released()` the
connection back to the pool, so a worker's pool need not be as large as its
number of slots; the pin takes a connection again on its next call. A pool
that keeps a connection for every pin (`PoolOptions.for_slots`) is made with
`hold_while_released`: the pin then keeps its connection, and a worker slot
that runs job after job checks one out once, not twice per job. A pin that
ends parks its connection for the next pin rather than giving it back
(`parked`): a checkout cycle costs about as much as two statements.

Work that is one statement runs in autocommit (see `engine.autocommit`), so a
pinned connection is in autocommit mode and transactions on it are explicit
BEGIN/COMMIT statements (on asyncpg BEGIN waits for the transaction's first
statement, and a transaction of held writes alone is one statement: see
`direct.hold_writes`); a transaction opened inside another one joins it.
A transaction always pins its connection for its own duration, so every call
its task makes inside it — on any port over the same engine: the job queue,
the blob store — joins it and commits or rolls back with it (`after_commit`
defers what must wait for the commit). Outside a transaction and without a
pin, each call checks out a connection as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool

from wfc.runtime.adapters.sql import direct, parked
from wfc.runtime.adapters.sql.engine import autocommit


@dataclass(slots=True)
class _Pin:
    engine: Engine  # the sync engine, whose `pool` this is
    pool: Pool
    task: asyncio.Task[object] | None
    conn: AsyncConnection | None = None
    depth: int = 0
    broken: bool = False
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    async def drop(self, *, park: bool = True) -> None:
        """Give the connection back (invalidated if it may still be inside a transaction),
        or with `park` keep it for the next pin (`parked`)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.broken or self.depth:
            await conn.invalidate()
            await conn.close()
        elif not (park and parked.park(self.engine, self.pool, conn)):
            await conn.close()
        self.broken = False
        self.depth = 0
        self.on_commit.clear()


_PINNED: ContextVar[_Pin | None] = ContextVar("wfc_pinned_connection", default=None)


class Connections:
    """Connections to one engine's database, honouring a pin made for the same pool."""

    def __init__(self, engine: AsyncEngine, *, hold_while_released: bool = False) -> None:
        self.engine = engine
        self._sync_engine = engine.sync_engine
        self._hold_while_released = hold_while_released
        self._autocommit = autocommit(engine)
        sqlite = engine.dialect.name == "sqlite"
        # SQLite: take the write lock up front, as every unpinned transaction does (engine.py).
        self._begin = "BEGIN IMMEDIATE" if sqlite else "BEGIN"

    def _pin(self) -> _Pin | None:
        pin = _PINNED.get()
        # (The sync engine's pool is an attribute, the async engine's a property over it;
        # `dispose()` replaces it, so it is read each time.)
        if pin is None or pin.pool is not self._sync_engine.pool:
            return None
        if pin.task is not asyncio.current_task():
            return None
        return pin

    async def _connection(self, pin: _Pin) -> AsyncConnection:
        if pin.conn is not None and not pin.depth and (pin.broken or _invalidated(pin.conn)):
            # The server closed it (see `direct`). SQLAlchemy would reconnect it on next use,
            # but not from the driver path: a pin held job after job takes a new one. One
            # that may still be inside a transaction (`broken`) is closed, not reused.
            await pin.drop()
        if pin.conn is None:
            pin.conn = parked.take(pin.pool) or await self._autocommit.connect()
        return pin.conn

    def single(self) -> _Single:
        """A connection for one statement, or statements each safe on their own."""
        return _Single(self)

    def transaction(self) -> _Transaction:
        """A connection in a transaction that commits when the block ends, or rolls back."""
        return _Transaction(self)

    def pinned_here(self) -> bool:
        """Whether this task's calls share one connection now (`pinned`)."""
        return self._pin() is not None

    def after_commit(self, action: Callable[[], None]) -> None:
        """Call `action` once this task's transaction commits (never if it rolls back), or
        now outside one: what others may act on only when the writes are visible to them."""
        pin = self._pin()
        if pin is not None and pin.depth:
            pin.on_commit.append(action)
        else:
            action()

    def pinned(self) -> _Pinned:
        """Run the block's calls from this task over one connection (nested pins join)."""
        return _Pinned(self)

    @contextlib.asynccontextmanager
    async def released(self) -> AsyncIterator[None]:
        """Give this task's pinned connection back while the block runs (user code, say).

        Inside a transaction the pin is kept: the transaction needs its connection. So it
        is when the pool keeps a connection for every pin (`hold_while_released`).
        """
        pin = self._pin()
        if pin is None or pin.depth or self._hold_while_released:
            yield
            return
        await pin.drop(park=False)  # for the pool to lend while the block runs
        token = _PINNED.set(None)
        try:
            yield
        finally:
            _PINNED.reset(token)


def _invalidated(conn: AsyncConnection) -> bool:
    """Whether a pinned connection can no longer be used: it has no pooled connection under
    it, which is what SQLAlchemy's `invalidated` reads for one that can reconnect, and
    also holds for one closed (not invalidated): either way the pin replaces it. Read
    directly, without the two properties, because every call a pinned task makes asks
    (`drivers.kept` reads the same)."""
    sync = conn.sync_connection
    return sync is None or sync._dbapi_connection is None


# The three blocks every port call opens, as classes: `contextlib.asynccontextmanager`
# costs a generator and two more coroutines per block, and a stage opens dozens of them.


class _Single:
    """`Connections.single()`: the pinned connection, or one checked out in autocommit."""

    __slots__ = ("_checked_out", "_connections")

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._checked_out: AbstractAsyncContextManager[AsyncConnection] | None = None

    async def __aenter__(self) -> AsyncConnection:
        connections = self._connections
        pin = connections._pin()
        if pin is not None:
            return await connections._connection(pin)
        self._checked_out = connections._autocommit.begin()
        return await self._checked_out.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        if self._checked_out is None:
            return None
        return await self._checked_out.__aexit__(*exc_info)


class _Pinned:
    """`Connections.pinned()`: this task's calls over one connection until the block ends."""

    __slots__ = ("_connections", "_pin", "_token")

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._pin: _Pin | None = None
        self._token: Token[_Pin | None] | None = None

    async def __aenter__(self) -> None:
        connections = self._connections
        if connections._pin() is not None:
            return  # a nested pin joins the one already made
        sync_engine = connections._sync_engine
        self._pin = _Pin(sync_engine, sync_engine.pool, asyncio.current_task())
        self._token = _PINNED.set(self._pin)

    async def __aexit__(self, *_exc_info: Any) -> None:
        pin, token = self._pin, self._token
        if pin is None or token is None:
            return
        _PINNED.reset(token)
        await pin.drop()


class _Transaction:
    """`Connections.transaction()`: BEGIN on the pinned connection (pinning one for the
    block if this task has none), COMMIT when the block ends, ROLLBACK if it raises. A
    transaction opened inside another one joins it."""

    __slots__ = ("_conn", "_connections", "_nested", "_own_pin", "_pin")

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._pin: _Pin | None = None
        self._conn: AsyncConnection | None = None
        self._nested = False
        self._own_pin: _Pinned | None = None

    async def __aenter__(self) -> AsyncConnection:
        connections = self._connections
        pin = connections._pin()
        if pin is None:
            self._own_pin = _Pinned(connections)
            await self._own_pin.__aenter__()
            pin = connections._pin()
            assert pin is not None
        try:
            conn = await connections._connection(pin)
            if pin.depth:
                pin.depth += 1
                self._nested = True
            else:
                # A BEGIN cancelled while it waits for the file's lock (another process
                # writing) still runs on the connection's thread, later: until the
                # connection is known outside a transaction, it must serve no one else.
                pin.broken = True
                # Writes that can wait travel with the next statement, and BEGIN with the first.
                if not direct.hold_writes(conn, connections._begin):
                    await direct.driver_sql(conn, connections._begin)
                pin.broken = False
        except BaseException:
            await self._unpin()
            raise
        if not self._nested:
            pin.depth = 1
        self._pin, self._conn = pin, conn
        return conn

    async def __aexit__(self, exc_type: Any, *_rest: Any) -> None:
        pin, conn = self._pin, self._conn
        assert pin is not None and conn is not None
        if self._nested:
            pin.depth -= 1
            return
        try:
            pin.depth = 0
            if exc_type is not None:
                await _roll_back(pin, conn)
                return  # the block's own exception goes on
            try:
                await direct.commit(conn)
            except BaseException:
                await _roll_back(pin, conn)
                raise
            actions, pin.on_commit = pin.on_commit, []
            for action in actions:
                action()
        finally:
            await self._unpin()

    async def _unpin(self) -> None:
        own, self._own_pin = self._own_pin, None
        if own is not None:
            await own.__aexit__(None, None, None)


async def _roll_back(pin: _Pin, conn: AsyncConnection) -> None:
    """After a block or its COMMIT failed: roll back, and drop what was to run on commit."""
    pin.on_commit.clear()
    # Until the rollback is known to have run (it may fail, or be cancelled), the
    # connection may still be inside a transaction: it must not go back to the pool.
    pin.broken = True
    with contextlib.suppress(Exception):
        await direct.rollback(conn)  # what is held is dropped with the rest
        pin.broken = False
