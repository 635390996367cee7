"""`TransactionLock` behaves as `asyncio.Lock` where a memory store's transactions can
tell: one holder at a time, waiters served first come first served, a cancelled waiter
handing its turn on, and a free lock taken at once only when nobody waits in line."""

from __future__ import annotations

import asyncio

import pytest

from wfc.runtime.adapters.memory import MemoryPersistence
from wfc.runtime.adapters.memory.turns import TransactionLock


async def test_waiters_are_served_in_the_order_they_came() -> None:
    lock, served = TransactionLock(), []
    assert lock.take_now() and lock.locked()

    async def waiter(name: str) -> None:
        await lock.take()
        served.append(name)
        await asyncio.sleep(0)
        lock.give_back()

    tasks = [asyncio.create_task(waiter(name)) for name in "abc"]
    await asyncio.sleep(0)
    assert not lock.take_now()  # held
    lock.give_back()
    assert not lock.take_now()  # free, but "a" was woken and waits to run: its turn
    await asyncio.gather(*tasks)
    assert served == ["a", "b", "c"] and not lock.locked()
    assert lock.take_now()


async def test_a_cancelled_waiter_hands_its_turn_on() -> None:
    lock, served = TransactionLock(), []
    lock.take_now()

    async def waiter(name: str) -> None:
        await lock.take()
        served.append(name)
        lock.give_back()

    first, second = asyncio.create_task(waiter("a")), asyncio.create_task(waiter("b"))
    await asyncio.sleep(0)
    lock.give_back()  # wakes "a", which is cancelled before it runs
    first.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled() and served == ["b"] and not lock.locked()


async def test_giving_back_a_free_lock_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not held"):
        TransactionLock().give_back()


async def test_concurrent_transactions_of_a_store_run_one_at_a_time() -> None:
    persistence, inside, most = MemoryPersistence(), 0, 0

    async def transaction() -> None:
        nonlocal inside, most
        async with persistence.transaction():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(transaction() for _ in range(10)))
    assert most == 1
