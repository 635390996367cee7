"""The blocks a SQL transaction's calls open (`persistence._SqlTransaction`).

Each store call inside a transaction opens one (`SqlStore._connection`); as small
classes, because a `contextlib.asynccontextmanager` costs a generator, its wrapper and
two more coroutines per block (as in `connections`).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection


class WritesFirst(Protocol):
    """A transaction that holds writes back until a call may need them (`Written`)."""

    _conn: AsyncConnection

    async def _write_held_lock(self) -> None: ...

    async def _write_new_run(self) -> None: ...


class Written:
    """The transaction's connection, once what waits to be written before a call is:
    the run it created (`_write_new_run`) and, unless `run_too` is false (a call that
    touches the stages table alone), the run's held lock (`_write_held_lock`)."""

    __slots__ = ("_run_too", "_tx")

    def __init__(self, tx: WritesFirst, *, run_too: bool) -> None:
        self._tx = tx
        self._run_too = run_too

    async def __aenter__(self) -> AsyncConnection:
        tx = self._tx
        if self._run_too:
            await tx._write_held_lock()
        await tx._write_new_run()
        return tx._conn

    async def __aexit__(self, *_exc: object) -> None:
        return None
