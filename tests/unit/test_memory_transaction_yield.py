"""A memory transaction yields to the event loop before it begins when another callback is
ready (so concurrent callers interleave as on a database), and otherwise only every
`_YIELD_EVERY`th time (so timers and I/O are not starved by a long series of
transactions that never wait); a turn of the loop with nothing to run is not taken for
every transaction."""

from __future__ import annotations

import asyncio

import pytest

from wfc.runtime.adapters.memory import FakeClock, MemoryPersistence
from wfc.runtime.adapters.memory import persistence as memory_persistence
from wfc.testing.conformance import a_run

CLOCK = FakeClock()


class _Counted:
    """`asyncio.sleep` for the store's module, counting the yields."""

    def __init__(self) -> None:
        self.yields = 0
        self._sleep = asyncio.sleep

    async def sleep(self, delay: float) -> None:
        self.yields += 1
        await self._sleep(delay)


async def test_alone_a_transaction_yields_only_every_so_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counted = _Counted()
    monkeypatch.setattr(asyncio, "sleep", counted.sleep)  # the module the store calls it in
    store = MemoryPersistence()
    every = memory_persistence._YIELD_EVERY
    for n in range(every * 3):
        async with store.transaction() as tx:
            await tx.create_run(a_run(CLOCK, f"r{n}"))
    assert counted.yields == 3


async def test_a_due_timer_runs_within_a_series_of_transactions_that_never_waits() -> None:
    store = MemoryPersistence()  # no transaction yet: the first yield is the last allowed
    fired: list[int] = []
    asyncio.get_running_loop().call_later(0, fired.append, 2)  # due at once, run by a turn
    count = 0
    while not fired and count < 10 * memory_persistence._YIELD_EVERY:
        async with store.transaction() as tx:
            await tx.create_run(a_run(CLOCK, f"r{count}"))
        count += 1
    assert fired == [2]
    # Moved to the ready callbacks by the turn of the last allowed, run by the next one.
    assert count <= memory_persistence._YIELD_EVERY + 1


async def test_concurrent_callers_interleave_at_every_transaction() -> None:
    store = MemoryPersistence()
    order: list[str] = []

    async def writer(name: str) -> None:
        for n in range(3):
            async with store.transaction() as tx:
                await tx.create_run(a_run(CLOCK, f"{name}{n}"))
                order.append(name)

    await asyncio.gather(writer("a"), writer("b"))
    assert order == ["a", "b"] * 3
