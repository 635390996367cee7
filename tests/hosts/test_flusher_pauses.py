"""The outbox flusher's pauses: it never spins with nothing to deliver, and a backlog it
delivers batch after batch still leaves the event loop to the worker's other tasks (on
SQLite a flush's statements run on the loop's thread and never give it a turn)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast

from wfc.runtime.commands import OutboxFlushResult
from wfc.runtime.hosts.flusher import QUICK, OutboxFlusher
from wfc.runtime.kernel import Kernel

FULL = OutboxFlushResult(published=500, remaining=True)
NOTHING = OutboxFlushResult(published=0)


class Flushes:
    """A kernel whose `dispatch` answers each flush with the next result, at once."""

    def __init__(self, results: Iterator[OutboxFlushResult], stopping: asyncio.Event) -> None:
        self.results, self.stopping, self.calls = results, stopping, 0

    async def dispatch(self, command: Any) -> OutboxFlushResult:
        self.calls += 1
        if self.calls >= 1_000:
            self.stopping.set()
        return next(self.results)


def flusher(results: Iterator[OutboxFlushResult]) -> tuple[OutboxFlusher, Flushes]:
    stopping = asyncio.Event()
    kernel = Flushes(results, stopping)
    return OutboxFlusher(cast(Kernel, kernel), stopping), kernel


async def test_nothing_to_deliver_after_a_full_batch_pauses() -> None:
    flush, _ = flusher(iter([NOTHING]))
    assert await flush._flush_once(timedelta(0)) == QUICK  # twice zero was zero: a spin


async def test_a_backlog_leaves_the_loop_to_other_tasks() -> None:
    def backlog() -> Iterator[OutboxFlushResult]:
        while True:
            yield FULL

    flush, kernel = flusher(backlog())
    seen_at: list[int] = []

    async def another_task() -> None:
        seen_at.append(kernel.calls)

    other = asyncio.get_running_loop().create_task(another_task())
    await flush._deliver()
    await other
    assert seen_at[0] < 5
