"""A pin's connection kept for the next pin, instead of going back to SQLAlchemy's pool.

A pin (`connections.Connections.pinned`) checks a connection out of SQLAlchemy's
async pool on its first call and gives it back when it ends: a dispatched command
pins one, a worker slot one per run it serves. Each checkout and checkin goes
through SQLAlchemy's `AsyncConnection` (a greenlet spawned for each), its
`Connection` (events, execution options) and the pool (events, the reset on
return): about 170 Python calls a cycle, two cycles a run, some 5% of an in-process
SQLite run's instructions. A pin that ends now parks its connection here when it
is clean (no transaction of ours nor of SQLAlchemy's open on it, not invalidated),
and the next pin of the same pool and event loop takes it back, last parked first.

On PostgreSQL too, since every transaction locks a run's row before its stages'
(docs/discussions.md, "Lock order on PostgreSQL, every path"). Parking was SQLite-only
while it exposed the signal's opposite order (a deadlock in five runs of eight of
`test_a_signal_and_a_timeout_racing_give_one_outcome`); the checkouts it saves are two
per run there as well (9.5 -> 9.1 M instructions per in-process `seq3` run). A hang
seen once with parking forced on PostgreSQL (the signal's lock-order test) was looked
for and not found: no connection was parked twice, inside a server transaction or with
a cancelled statement in flight, over the PostgreSQL suites run with checks at every
park and take. A statement cancelled while it waits for a row lock leaves nothing
behind (`test_parked_connections`): asyncpg waits for the cancellation to finish
before the connection's next statement.

The pool cannot lend a parked connection to anyone else, so at most half of the
pool's size is parked, and none while fewer than a quarter of the pool's size (at least
two) stays free to check out: calls outside a pin (a wakeup listener, a lease's
heartbeat, a read) take their connection from the pool, and a worker's pool is sized
for its slots and those (`PoolOptions.for_slots`). Without that room a busy worker
opened a connection beyond its pool now and then, which closed again when given back.
Only a `QueuePool` parks (an in-memory SQLite database's pool shares one connection). A
parked connection is closed when its engine is disposed (`SqlStorage.close`):
`engine_disposed` closes the parked connections of the pools it replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import Pool, QueuePool

_PARKED = "_wfc_parked"  # the pool's attribute: its parked connections, by event loop
_POOLS = "_wfc_parking_pools"  # the sync engine's attribute: the pools it parked on


def park(engine: Engine, pool: Pool, conn: AsyncConnection) -> bool:
    """Keep `conn` (checked out of `engine`'s `pool`, outside any transaction) for the next
    pin of this event loop; False when it is not kept, and the caller gives it back."""
    if not isinstance(pool, QueuePool):
        return False
    if pool is not engine.pool:
        return False  # disposed since it was checked out: its parked ones were closed
    sync = conn.sync_connection
    if sync is None or sync._dbapi_connection is None or sync.in_transaction():
        return False  # invalidated or closed; or SQLAlchemy's own transaction is open
    if pool.size() - pool.checkedout() < max(2, pool.size() // 4):
        return False  # the pool's room is for calls outside a pin (see the module's docstring)
    parked = _parked_here(engine, pool)
    if len(parked) >= pool.size() // 2:
        return False
    parked.append(conn)
    return True


def take(pool: Pool) -> AsyncConnection | None:
    """A connection parked on `pool` by this event loop (the last one parked), or None."""
    by_loop: Any = pool.__dict__.get(_PARKED)
    parked: list[AsyncConnection] | None = (
        None if by_loop is None else by_loop.get(asyncio.get_running_loop())
    )
    while parked:
        conn = parked.pop()
        sync = conn.sync_connection
        if sync is not None and sync._dbapi_connection is not None:
            return conn
    return None


def _parked_here(engine: Engine, pool: Pool) -> list[AsyncConnection]:
    by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[AsyncConnection]] | None
    by_loop = pool.__dict__.get(_PARKED)
    if by_loop is None:
        by_loop = pool.__dict__[_PARKED] = weakref.WeakKeyDictionary()
        pools = engine.__dict__.get(_POOLS)
        if pools is None:  # the engine's first: its disposal closes what is parked
            pools = engine.__dict__[_POOLS] = weakref.WeakSet()
            event.listen(engine, "engine_disposed", _close_replaced)
        pools.add(pool)
    loop = asyncio.get_running_loop()
    parked = by_loop.get(loop)
    if parked is None:
        parked = by_loop[loop] = []
    return parked


def _close_replaced(engine: Engine) -> None:
    """`engine_disposed`: the pools `engine` no longer uses give up what is parked on them.
    Inside `AsyncEngine.dispose`'s greenlet, so the driver can be awaited; each connection
    is invalidated, which closes it, as its pool would have at dispose time."""
    for pool in list(engine.__dict__.get(_POOLS, ())):
        if pool is engine.pool:
            continue
        by_loop = pool.__dict__.pop(_PARKED, None) or {}
        for parked in list(by_loop.values()):
            while parked:
                conn = parked.pop()
                sync = conn.sync_connection
                if sync is None:
                    continue
                with contextlib.suppress(Exception):  # already closed, or no greenlet
                    sync.invalidate()
