"""`TransactionLock`: the memory store's transactions one at a time, in the order they came.

Every transaction of a memory store takes this lock. It behaves as `asyncio.Lock`
(first come, first served; a waiter cancelled after it was woken hands its turn to
the next), and its code is that lock's, but a free lock that nobody waits for is
taken by a plain call (`take_now`): `asyncio.Lock.acquire` is a coroutine, made and
run even then, which is most of the time (a test kernel runs one transaction at a
time).
"""

from __future__ import annotations

import asyncio
from collections import deque


class TransactionLock:
    """`asyncio.Lock`'s behaviour, with an uncontended acquire that is not a coroutine."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def locked(self) -> bool:
        """Whether a transaction holds the lock."""
        return self._held

    def take_now(self) -> bool:
        """Take the lock if it is free and nobody waits in line for it; whether it did."""
        if self._held or self._waiters:
            return False
        self._held = True
        return True

    async def take(self) -> None:
        """Take the lock, waiting in line for it (`asyncio.Lock.acquire`)."""
        if not self._held and all(waiter.cancelled() for waiter in self._waiters):
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        # Out of the line before a cancellation is handled, so as not to wake itself.
        try:
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        except asyncio.CancelledError:
            if not self._held:
                self._wake_first()
            raise
        self._held = True

    def give_back(self) -> None:
        """Free the lock and wake the first in line, if any (`asyncio.Lock.release`)."""
        if not self._held:
            raise RuntimeError("the transaction lock is not held")
        self._held = False
        self._wake_first()

    def _wake_first(self) -> None:
        # One already woken (done) takes the lock when it runs, or, cancelled, wakes the next.
        if self._waiters:
            first = self._waiters[0]
            if not first.done():
                first.set_result(None)
