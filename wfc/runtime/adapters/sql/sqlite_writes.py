"""How one process's SQLite connections share the file: turns to write, and checkpoints.

Both are per engine (one `sqlite_dbapi.Module` each) and used by
`sqlite_dbapi.Connection`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref

# Commits between two WAL checkpoints when SQLite's automatic ones are off: SQLite's own
# default is one per 1,000 pages of WAL, and a stage's transaction writes a few pages.
CHECKPOINT_EVERY = 200


class Checkpoints:
    """When the next WAL checkpoint is due: every `every` commits of the process.

    Under `synchronous=NORMAL` in WAL mode a COMMIT syncs nothing, so it runs on the
    event loop's thread; only a checkpoint (copying the WAL back into the database
    file, and syncing both) may take long. With `wal_autocheckpoint=0` SQLite never
    starts one inside a COMMIT, and the connection that makes the due commit runs one
    on its own thread instead (`Connection._checkpoint_now_and_then`).
    """

    def __init__(self, every: int = CHECKPOINT_EVERY) -> None:
        self.every = every
        self._commits = 0

    def due(self) -> bool:
        """Count a commit; whether a checkpoint is due after it."""
        self._commits += 1
        if self._commits < self.every:
            return False
        self._commits = 0
        return True


class WriteTurns:
    """Whose turn it is to write, among one engine's connections in this process.

    SQLite lets one connection write at a time, and one that finds the file locked
    sleeps in SQLite's busy handler — 1, 2, 5, 10, 15, 20, 25 … ms between tries —
    however soon the lock is free. A worker's job slots each write on their own
    connection, so most of a worker's writes met another slot's transaction and
    slept: the worker sat idle (70% of its main thread's samples in the event loop's
    wait) while its runs waited. Connections of one process instead take turns on an
    asyncio lock, and the next one starts the moment the last one commits. The
    busy handler still orders writers in different processes (`busy_timeout`).

    A turn is waited for as long as the busy timeout allows, then fails as SQLite
    would ("database is locked"). One lock per event loop: an asyncio lock belongs
    to one.
    """

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        if not lock.locked():
            await lock.acquire()  # free: taken without waiting
            return lock
        try:
            async with asyncio.timeout(self._timeout_s):
                await lock.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        return lock
