"""How one process's SQLite connections share the file: turns to write, and checkpoints.

Both are per engine (one `sqlite_dbapi.Module` each) and used by
`sqlite_dbapi.Connection`. `WRITES` counts, for the whole process, the writes whose
turn has ended, so the change watcher (`sqlite_wakeups`) can tell a change another
process made from its own.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import weakref
from collections.abc import Callable

# Commits between two WAL checkpoints when SQLite's automatic ones are off: SQLite's own
# default is one per 1,000 pages of WAL, and a stage's transaction writes a few pages.
CHECKPOINT_EVERY = 200


class WriteCount:
    """How many turns to write this process's connections have given back: each one
    ended a write (committed or rolled back), over every engine of the process."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended = 0


WRITES = WriteCount()


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


# How long a writer may wait for a turn that others keep taking ahead of it before the
# turn is handed to it: a few of wfc's transactions (a tenth to a few milliseconds each).
HAND_OVER_AFTER_S = 0.005


class Turn:
    """One event loop's turn to write: held or not, and the writers waiting for it.

    Unlike an `asyncio.Lock`, a free turn is taken by whoever asks first, even while a
    waiter that was woken for it has not run yet (that waiter then waits again, first in
    line). An `asyncio.Lock` hands a freed lock to its first waiter, so a writer that
    commits and reaches its next BEGIN without suspending — a slot finishing a stage and
    starting the next — must queue behind it. Once a few writers queued (one BEGIN that
    waited on its thread for another process's lock is enough), every later write
    queued too, for as long as the process stayed busy: in a `wfc worker` of 8 slots,
    7–8 writers waited at 73% of the turns' ends (none in process, where nothing had
    made a queue), each transaction ran on another slot's connection than the last, and
    SQLite dropped that connection's page cache and read its pages again each time.

    Taking ahead is bounded, as Go's `sync.Mutex` bounds it: once the first waiter has
    waited `hand_over_after_s`, a release hands the turn straight to it (it stays held,
    so nobody takes it first). Without that, a writer that suspends inside its turn (a
    COMMIT under `synchronous=FULL` runs on the connection's thread; a BEGIN may wait
    there for another process) and begins again at once would take every turn, and the
    waiter would fail "database is locked" after the busy timeout.
    """

    __slots__ = ("hand_over_after_s", "held", "now", "waiting")

    def __init__(
        self, now: Callable[[], float], hand_over_after_s: float = HAND_OVER_AFTER_S
    ) -> None:
        self.held = False
        self.now = now  # the event loop's clock (a test's own)
        self.hand_over_after_s = hand_over_after_s
        # Each waiter's future (its result: True when the turn was handed to it, held) and
        # when it began to wait.
        self.waiting: collections.deque[tuple[asyncio.Future[bool], float]] = collections.deque()

    def locked(self) -> bool:
        return self.held

    def release(self) -> None:
        self.held = False
        WRITES.ended += 1
        self.wake_next()

    def wake_next(self) -> None:
        """Wake the first writer still waiting: hand it the turn if it has waited long
        enough, else let it take the turn if it is free when it runs."""
        while self.waiting:
            woken, since = self.waiting.popleft()
            if woken.done():
                continue
            hand_over = self.now() - since >= self.hand_over_after_s
            if hand_over:
                self.held = True  # nobody can take it before the waiter runs
            woken.set_result(hand_over)
            return


class WriteTurns:
    """Whose turn it is to write, among one engine's connections in this process.

    SQLite lets one connection write at a time, and one that finds the file locked
    sleeps in SQLite's busy handler — 1, 2, 5, 10, 15, 20, 25 … ms between tries —
    however soon the lock is free. A worker's job slots each write on their own
    connection, so most of a worker's writes met another slot's transaction and
    slept: the worker sat idle (70% of its main thread's samples in the event loop's
    wait) while its runs waited. Connections of one process instead take turns
    (`Turn`), and the next one starts the moment the last one commits. The busy
    handler still orders writers in different processes (`busy_timeout`).

    A turn is waited for as long as the busy timeout allows, then fails as SQLite
    would ("database is locked"). One turn per event loop: its waiters are futures of
    that loop.
    """

    def __init__(
        self,
        timeout_s: float,
        now: Callable[[], float] | None = None,
        hand_over_after_s: float = HAND_OVER_AFTER_S,
    ) -> None:
        self._timeout_s = timeout_s
        self._now = now
        self._hand_over_after_s = hand_over_after_s
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turn] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self) -> Turn:
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = Turn(self._now or loop.time, self._hand_over_after_s)
        if not turn.held:
            turn.held = True  # free: taken without waiting
            return turn
        try:
            async with asyncio.timeout(self._timeout_s):
                await _wait_for(turn, loop)
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        turn.held = True
        return turn


async def _wait_for(turn: Turn, loop: asyncio.AbstractEventLoop) -> None:
    """Until this writer holds `turn`: last in line at first; after a wake-up that found
    it taken again, first in line (`Turn` hands it the turn once it has waited long)."""
    since = turn.now()
    first_in_line = False
    while True:
        woken: asyncio.Future[bool] = loop.create_future()
        entry = (woken, since)
        if first_in_line:
            turn.waiting.appendleft(entry)
        else:
            turn.waiting.append(entry)
        try:
            handed = await woken
        except BaseException:
            if woken.done() and not woken.cancelled():
                # Woken, then cancelled before it ran: the turn (if handed) or the
                # wake-up goes to the next in line.
                if woken.result():
                    turn.release()
                elif not turn.held:
                    turn.wake_next()
            elif entry in turn.waiting:
                turn.waiting.remove(entry)
            raise
        if handed or not turn.held:
            return
        first_in_line = True
