"""SQLite: a claim advances its run's outbox counter by the events its transaction appends
as a rule (`persistence.CLAIM_EVENTS`); whatever that transaction appends, the run's
sequences stay 1, 2, 3 … without a gap or a repeat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wfc.runtime.adapters.sql import SqlStorage, open_storage
from wfc.runtime.adapters.sql.persistence import CLAIM_EVENTS
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run, an_event


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    opened = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}")
    await opened.prepare()
    yield opened
    await opened.close()


async def _sequences(storage: SqlStorage, run_id: str) -> list[int]:
    return [event.sequence for event in await storage.persistence.outbox_of_run(run_id)]


@pytest.mark.parametrize("appended", [0, 1, CLAIM_EVENTS, CLAIM_EVENTS + 3])
async def test_the_claim_s_events_and_the_next_ones_follow_on(
    storage: SqlStorage, appended: int
) -> None:
    clock = FakeClock()
    p = storage.persistence
    await p.create_run(a_run(clock, "r1"))
    async with p.transaction() as tx:
        claim = await tx.claim_next_pending_run()
        assert claim is not None and claim.run.id == "r1"
        if appended:
            events = [an_event(clock, f"c{n}", "r1") for n in range(appended)]
            numbered = await tx.append_outbox(events)
            assert [e.sequence for e in numbered] == list(range(1, appended + 1))
    later = await p.append_outbox([an_event(clock, "later", "r1")])
    assert [e.sequence for e in later] == [appended + 1]
    assert await _sequences(storage, "r1") == list(range(1, appended + 2))


async def test_another_run_s_events_first_leave_no_gap(storage: SqlStorage) -> None:
    clock = FakeClock()
    p = storage.persistence
    await p.create_run(a_run(clock, "other"))
    await p.create_run(a_run(clock, "r1", priority=9))  # claimed first
    async with p.transaction() as tx:
        claim = await tx.claim_next_pending_run()
        assert claim is not None and claim.run.id == "r1"
        await tx.append_outbox([an_event(clock, "o1", "other")])
        await tx.append_outbox([an_event(clock, "c1", "r1")])
    assert await _sequences(storage, "r1") == [1]
    assert await _sequences(storage, "other") == [1]


async def test_a_rolled_back_claim_takes_its_advance_back(storage: SqlStorage) -> None:
    clock = FakeClock()
    p = storage.persistence
    await p.create_run(a_run(clock, "r1"))
    with pytest.raises(RuntimeError):
        async with p.transaction() as tx:
            assert await tx.claim_next_pending_run() is not None
            raise RuntimeError("the claim's transaction fails")
    async with p.transaction() as tx:
        assert await tx.claim_next_pending_run() is not None
        await tx.append_outbox([an_event(clock, "c1", "r1")])
    assert await _sequences(storage, "r1") == [1]
