"""A worker's outbox flusher: run events reach plugins as they commit, not a tick later.

A maintenance tick flushed at most 100 events every 10 s, while a three-stage
run writes a dozen: under load, plugins heard of runs hours after they ended.
The flusher delivers in batches for as long as batches come back full, and is
woken as soon as the worker's own stages commit (their events are in the
outbox by then). Between wakeups it looks again after a short pause that grows
while there is nothing to deliver, so idle workers cost the database little.

Only one flusher in the fleet delivers at a time (`Persistence.outbox_flusher`):
the others find the outbox held and wait, so a run's events reach plugins in
order however many workers there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from wfc.runtime.commands import OutboxFlush
from wfc.runtime.kernel import Kernel

log = logging.getLogger("wfc.worker")

BATCH = 500
QUICK = timedelta(milliseconds=100)  # after events were delivered: more are likely
MIN_GAP = timedelta(milliseconds=50)  # wakeups closer than this are delivered together
IDLE_MAX = timedelta(seconds=2)  # the longest pause with nothing to deliver
BUSY = timedelta(milliseconds=500)  # another worker is delivering


class OutboxFlusher:
    """Delivers a kernel's outbox until `stopping` is set; `wake` when events committed."""

    def __init__(self, kernel: Kernel, stopping: asyncio.Event, *, one_run: bool = False) -> None:
        self.kernel = kernel
        self._stopping = stopping
        self._woken = asyncio.Event()
        self._one_run = one_run
        self.published = 0

    def wake(self) -> None:
        """Events were just committed: deliver them now."""
        self._woken.set()

    async def run(self) -> None:
        """Flush, pause, repeat; on its own pinned connection (it holds the outbox's lock in
        a transaction while plugins run, and must not take a stage's connection)."""
        while not self._stopping.is_set():
            try:
                async with self.kernel.deps.pinning.pinned():
                    await self._deliver()
            except Exception as error:  # its connection: the worker's health check decides
                log.warning("outbox flusher lost its connection; trying again: %s", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), IDLE_MAX.total_seconds())

    async def last_batch(self) -> None:
        """One batch more as the worker stops, after its last jobs committed: the events of
        the runs it just finished reach plugins now, not when another worker next flushes
        (a `wfc run` process has no other). Another flusher delivering, or a backlog larger
        than a batch, is left to the fleet."""
        try:
            result = await self.kernel.dispatch(OutboxFlush(max_events=BATCH))
        except Exception as error:
            log.warning("outbox flush on stop failed; another worker delivers: %s", error)
            return
        self.published += result.published

    async def _deliver(self) -> None:
        """Flush, pause, repeat, until stopping. A host serving one run (`run_and_wait`'s)
        starts with a pause, not a flush: it starts before its run exists, what other runs
        left is theirs to flush, and its run's events come with its jobs' commits, which
        wake it (its last batch delivers whatever remains as it stops)."""
        pause = QUICK
        if self._one_run:
            await self._pause(pause)
        while not self._stopping.is_set():
            self._woken.clear()
            pause = await self._flush_once(pause)
            if not pause:  # a full batch: the next at once, but after what else is ready
                await asyncio.sleep(0)  # (SQLite's statements do not give the loop a turn)
            else:
                await self._pause(pause)

    async def _pause(self, pause: timedelta) -> None:
        """Until woken or `pause` has passed, then `MIN_GAP` more: a busy worker wakes it
        after every job, and one flush per gap delivers them all, where one per job would
        cost each job a transaction."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), pause.total_seconds())
        if not self._stopping.is_set():  # a stopping worker's last batch comes after
            await asyncio.sleep(MIN_GAP.total_seconds())

    async def _flush_once(self, pause: timedelta) -> timedelta:
        """One batch; how long to pause before the next (zero: go on at once)."""
        try:
            result = await self.kernel.dispatch(OutboxFlush(max_events=BATCH))
        except Exception as error:
            log.warning("outbox flush failed; trying again: %s", error)
            return IDLE_MAX
        self.published += result.published
        if result.busy:
            return BUSY
        if result.remaining:
            return timedelta(0)
        if result.published:
            return QUICK
        # Nothing waited: twice the last pause, from QUICK at least (the last may have been
        # zero, after a full batch, and twice zero would never pause again).
        return min(max(pause * 2, QUICK), IDLE_MAX)
