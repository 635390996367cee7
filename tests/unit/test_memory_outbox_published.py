"""The memory outbox keeps a delivered event's `published_at` apart from its record until
the record is read (`OutboxAndKeys.mark_published`, `_event`): every read must still see
the event as published, when it was, and a rollback must leave both as they were."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from wfc.runtime.adapters.memory import FakeClock, MemoryPersistence
from wfc.runtime.records import Status
from wfc.testing.port_fixtures import a_run, an_event


class _Failed(Exception):
    pass


async def _store(events: int = 2) -> tuple[MemoryPersistence, FakeClock]:
    clock = FakeClock()
    store = MemoryPersistence(clock)
    await store.append_outbox([an_event(clock, f"e{n}", "r") for n in range(events)])
    return store, clock


async def _published(store: MemoryPersistence) -> list[object]:
    return [e.published_at for e in await store.outbox_of_run("r")]


async def test_every_read_sees_the_publication() -> None:
    store, clock = await _store()
    first, _ = await store.unpublished_outbox(10)
    await store.mark_published([first], clock.now())
    assert await _published(store) == [clock.now(), None]
    assert [e.published_at for e in store.all_outbox()] == [clock.now(), None]
    assert await _published(store) == [clock.now(), None]  # read again, the same
    assert [e.payload["n"] for e in await store.unpublished_outbox(10)] == ["e1"]


async def test_a_later_publication_replaces_one_already_read() -> None:
    store, clock = await _store()
    first, _ = await store.unpublished_outbox(10)
    await store.mark_published([first], clock.now())
    assert await _published(store) == [clock.now(), None]
    later = clock.now() + timedelta(seconds=5)
    await store.mark_published([first], later)
    assert await _published(store) == [later, None]


async def test_a_rollback_undoes_the_publication_and_its_read() -> None:
    store, clock = await _store()
    first, _ = await store.unpublished_outbox(10)
    with pytest.raises(_Failed):
        async with store.transaction() as tx:
            await tx.mark_published([first], clock.now())
            assert [e.published_at for e in await tx.outbox_of_run("r")] == [clock.now(), None]
            raise _Failed
    assert await _published(store) == [None, None]
    assert [e.payload["n"] for e in await store.unpublished_outbox(10)] == ["e0", "e1"]
    await store.mark_published([first], clock.now())  # and it can still be published
    assert await _published(store) == [clock.now(), None]


async def test_a_change_to_a_published_event_keeps_its_publication() -> None:
    store, clock = await _store()
    first, _ = await store.unpublished_outbox(10)
    await store.mark_published([first], clock.now())
    assert await store.increment_outbox_retry(first) == 1
    [changed, _] = await store.outbox_of_run("r")
    assert changed.published_at == clock.now() and changed.retry_count == 1
    assert [e.payload["n"] for e in await store.unpublished_outbox(10)] == ["e1"]


async def test_a_pruned_run_leaves_no_publication_behind() -> None:
    store, clock = await _store()
    first, second = await store.unpublished_outbox(10)
    await store.mark_published([first, second], clock.now())
    finished = replace(a_run(clock, "r", status=Status.COMPLETED), completed_at=clock.now())
    await store.create_run(finished)
    later = clock.now() + timedelta(days=1)
    assert [run.id for run in await store.prune_runs(later, [Status.COMPLETED], 10)] == ["r"]
    assert store.all_outbox() == [] and not store._t.published
