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
that runs job after job checks one out once, not twice per job.

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
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool

from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.engine import autocommit


@dataclass(slots=True)
class _Pin:
    pool: Pool
    task: asyncio.Task[object] | None
    conn: AsyncConnection | None = None
    depth: int = 0
    broken: bool = False
    on_commit: list[Callable[[], None]] = field(default_factory=list)

    async def drop(self) -> None:
        """Give the connection back (invalidated if it may still be inside a transaction)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.broken or self.depth:
            await conn.invalidate()
        await conn.close()
        self.broken = False
        self.depth = 0
        self.on_commit.clear()


_PINNED: ContextVar[_Pin | None] = ContextVar("wfc_pinned_connection", default=None)


class Connections:
    """Connections to one engine's database, honouring a pin made for the same pool."""

    def __init__(self, engine: AsyncEngine, *, hold_while_released: bool = False) -> None:
        self.engine = engine
        self._hold_while_released = hold_while_released
        self._autocommit = autocommit(engine)
        sqlite = engine.dialect.name == "sqlite"
        # SQLite: take the write lock up front, as every unpinned transaction does (engine.py).
        self._begin = "BEGIN IMMEDIATE" if sqlite else "BEGIN"

    def _pin(self) -> _Pin | None:
        pin = _PINNED.get()
        if pin is None or pin.pool is not self.engine.pool:
            return None
        if pin.task is not asyncio.current_task():
            return None
        return pin

    async def _connection(self, pin: _Pin) -> AsyncConnection:
        if pin.conn is not None and pin.conn.invalidated and not pin.depth:
            # The server closed it (see `direct`). SQLAlchemy would reconnect it on next use,
            # but not from the driver path: a pin held job after job takes a new one.
            await pin.drop()
        if pin.conn is None:
            pin.conn = await self._autocommit.connect()
        return pin.conn

    @contextlib.asynccontextmanager
    async def single(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement, or statements each safe on their own."""
        pin = self._pin()
        if pin is not None:
            yield await self._connection(pin)
            return
        async with self._autocommit.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction that commits when the block ends, or rolls back."""
        pin = self._pin()
        if pin is None:
            async with self.pinned(), self.transaction() as conn:
                yield conn
            return
        conn = await self._connection(pin)
        if pin.depth:
            pin.depth += 1
            try:
                yield conn
            finally:
                pin.depth -= 1
            return
        # Writes that can wait travel with the next statement, and BEGIN with the first.
        if not direct.hold_writes(conn, self._begin):
            await direct.driver_sql(conn, self._begin)
        pin.depth = 1
        try:
            yield conn
            pin.depth = 0
            await direct.commit(conn)
        except BaseException:
            pin.depth = 0
            pin.on_commit.clear()
            # Until the rollback is known to have run (it may fail, or be cancelled), the
            # connection may still be inside a transaction: it must not go back to the pool.
            pin.broken = True
            with contextlib.suppress(Exception):
                await direct.rollback(conn)  # what is held is dropped with the rest
                pin.broken = False
            raise
        actions, pin.on_commit = pin.on_commit, []
        for action in actions:
            action()

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

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[None]:
        """Run the block's calls from this task over one connection (nested pins join)."""
        if self._pin() is not None:
            yield
            return
        pin = _Pin(pool=self.engine.pool, task=asyncio.current_task())
        token = _PINNED.set(pin)
        try:
            yield
        finally:
            _PINNED.reset(token)
            await pin.drop()

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
        await pin.drop()
        token = _PINNED.set(None)
        try:
            yield
        finally:
            _PINNED.reset(token)
