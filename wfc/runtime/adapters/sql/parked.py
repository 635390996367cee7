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

SQLite only, for now: on PostgreSQL the checkouts saved changed how two commands'
transactions interleave, and `test_a_signal_and_a_timeout_racing_give_one_outcome`
then met a deadlock (a signal's transaction and a job's locking two rows in opposite
orders) in five runs of eight. The signal now locks the run first, as the others do
(`kernel.signals`), but parking has not been measured on PostgreSQL since. SQLite's
writers take turns (`sqlite_writes.WriteTurns`), so no such deadlock exists there.

The pool cannot lend a parked connection to anyone else, so at most half of the
pool's size is parked (the rest stays the pool's, for calls outside a pin); only a
`QueuePool` parks (an in-memory SQLite database's pool shares one connection). A
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
    if not isinstance(pool, QueuePool) or engine.dialect.name != "sqlite":
        return False  # PostgreSQL: see the module's docstring
    if pool is not engine.pool:
        return False  # disposed since it was checked out: its parked ones were closed
    sync = conn.sync_connection
    if sync is None or sync._dbapi_connection is None or sync.in_transaction():
        return False  # invalidated or closed; or SQLAlchemy's own transaction is open
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
