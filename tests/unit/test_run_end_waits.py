"""`RunEndWaits`: one listening for every waiter of a storage, kept a while after the last,
and every waiter woken when it (re)opens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from wfc.runtime import run_end_waits
from wfc.runtime.run_end_waits import RunEndWaits


class CountedRunEnds:
    """A `RunEnds` that counts its listenings and can lose the open one."""

    def __init__(self) -> None:
        self.opened = 0
        self.open = 0
        self.on_end: Callable[[str | None], None] | None = None
        self._lost: asyncio.Future[None] | None = None

    @contextlib.asynccontextmanager
    async def listen(self, on_end: Callable[[str | None], None]) -> AsyncIterator[Awaitable[None]]:
        self.opened += 1
        self.open += 1
        self.on_end = on_end
        self._lost = asyncio.get_running_loop().create_future()
        try:
            yield self._lost
        finally:
            self.open -= 1

    def lose(self) -> None:
        assert self._lost is not None
        self._lost.set_result(None)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_listening_serves_every_waiter_and_wakes_only_the_run_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_end_waits, "LINGER", 0.05)
    ends = CountedRunEnds()
    waits = RunEndWaits(ends)
    async with waits.waiting("a") as a, waits.waiting("a") as a_too, waits.waiting("b") as b:
        woken_a, woken_b = a.arm(), b.arm()
        assert a_too.arm() is woken_a  # the waiters of one run share its signal
        await _settle()
        assert (ends.opened, ends.open) == (1, 1)
        # Opening woke everyone (an end committed before it held was never told).
        assert woken_a.is_set() and woken_b.is_set()
        woken_a, woken_b = a.arm(), b.arm()
        assert ends.on_end is not None
        ends.on_end("a")
        assert woken_a.is_set() and not woken_b.is_set()
        ends.on_end(None)  # some run moved, not said which
        assert woken_b.is_set()
    assert ends.open == 1  # kept a while for the next waiter
    async with waits.waiting("c"):
        await asyncio.sleep(0.1)  # longer than LINGER: a waiter keeps it open
        assert (ends.opened, ends.open) == (1, 1)
    await asyncio.sleep(0.1)
    assert ends.open == 0
    await waits.close()


async def test_a_lost_listening_opens_again_and_wakes_every_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_end_waits, "RETRY_AFTER", 0.01)
    ends = CountedRunEnds()
    waits = RunEndWaits(ends)
    async with waits.waiting("a") as a:
        await _settle()
        woken = a.arm()
        ends.lose()
        await asyncio.sleep(0.1)
        assert ends.opened == 2 and woken.is_set()
    await waits.close()
    assert ends.open == 0


async def test_the_kernel_s_own_run_ends_need_no_listening() -> None:
    waits = RunEndWaits()
    async with waits.waiting("a") as a:
        woken = a.arm()
        waits.run_ended("b")
        assert not woken.is_set()
        waits.run_ended("a")
        assert woken.is_set()
        assert not waits.listening
