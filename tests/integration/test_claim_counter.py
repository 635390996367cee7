"""SQLite: a claim advances its run's outbox counter by the events its transaction appends
as a rule (`persistence.CLAIM_EVENTS`); whatever that transaction appends, the run's
sequences stay 1, 2, 3 … without a gap or a repeat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.handed_seq3 import store_ports
from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import SqlStorage, open_storage, outbox
from wfc.runtime.adapters.sql.drivers import watching
from wfc.runtime.adapters.sql.persistence import CLAIM_EVENTS, LOCK_EVENTS
from wfc.runtime.records import StageFence, Status
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run, a_running_stage, an_event, move_under


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    opened = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=FakeClock())
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


def _counter_writes(sent: list[str]) -> list[str]:
    """The statements that advance a run's counter alone (`outbox.advance_counter`, `_reserve`)."""
    assert str(outbox._RESERVE).startswith(_COUNTER_WRITE)  # else nothing would match
    return [sql for sql in sent if sql.startswith(_COUNTER_WRITE)]


_COUNTER_WRITE = "UPDATE runs SET last_sequence"


async def test_a_last_outcome_that_claims_numbers_both_runs_without_a_counter_write(
    storage: SqlStorage,
) -> None:
    """The kernel's last outcome on SQLite: the finished run's lock held, the next run
    claimed, and both runs' events appended at once. The held lock's write advances the
    finished run's counter and the claim advanced the next one's, so the append is one
    INSERT (it was three counter UPDATEs and two INSERTs)."""
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    run, row, _ = await a_running_stage(ports)  # r1 has event 1
    await p.create_run(a_run(clock, "r2"))
    with watching(storage.engine) as sent:
        async with p.transaction() as tx:
            await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
            )
            await tx.update_run(
                "r1", {"status": Status.COMPLETED}, expected_version=run.version + 1
            )
            claim = await tx.claim_next_pending_run()
            assert claim is not None and claim.run.id == "r2"
            finished = [an_event(clock, f"f{n}", "r1") for n in range(2)]
            started = [an_event(clock, f"s{n}", "r2") for n in range(CLAIM_EVENTS)]
            numbered = await tx.append_outbox(finished + started)
    assert [(e.run_id, e.sequence) for e in numbered] == [
        ("r1", 2),
        ("r1", 3),
        *[("r2", n) for n in range(1, CLAIM_EVENTS + 1)],
    ]
    assert _counter_writes(sent) == []
    assert sum(1 for sql in sent if sql.startswith("INSERT INTO outbox")) == 1
    assert await _sequences(storage, "r1") == [1, 2, 3]
    assert await _sequences(storage, "r2") == list(range(1, CLAIM_EVENTS + 1))
    finished_run = await p.get_run("r1")
    assert finished_run is not None and finished_run.status is Status.COMPLETED
    later = await p.append_outbox([an_event(clock, "l1", "r1"), an_event(clock, "l2", "r2")])
    assert [e.sequence for e in later] == [4, CLAIM_EVENTS + 1]


@pytest.mark.parametrize("failure", ["raised", "caught"])
async def test_a_held_lock_kept_across_a_claim_still_fails_the_transaction_whole(
    storage: SqlStorage, failure: str
) -> None:
    """The finished run moved while its stage ran: its held lock, written after the claim
    now, fails, and the claim of the next run is rolled back with the rest. Also when the
    caller catches the write's failure and goes on: a held lock is forgotten only once
    written, so the commit writes it again, and fails."""
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    run, row, job_id = await a_running_stage(ports)
    await move_under(ports, "run", row, job_id)
    await p.create_run(a_run(clock, "r2"))
    with pytest.raises(ExpectationFailed):
        async with p.transaction() as tx:
            await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
            )
            assert await tx.claim_next_pending_run() is not None
            events = [an_event(clock, "s1", "r2"), an_event(clock, "f1", "r1")]
            if failure == "raised":
                await tx.append_outbox(events)
            with pytest.raises(ExpectationFailed):
                await tx.append_outbox(events)
            await tx.append_outbox([an_event(clock, "s2", "r2")])
    claimable = await p.get_run("r2")
    assert claimable is not None and claimable.status is Status.PENDING
    assert await _sequences(storage, "r1") == [1]
    assert await _sequences(storage, "r2") == []


async def test_a_claim_whose_events_come_after_another_run_s_takes_its_numbers(
    storage: SqlStorage,
) -> None:
    """The claimed run's events after another run's, in separate appends: each run's
    sequences still follow on, and the claim's advance is used, not taken back."""
    clock = FakeClock()
    p = storage.persistence
    await p.create_run(a_run(clock, "other"))
    await p.create_run(a_run(clock, "r1", priority=9))
    with watching(storage.engine) as sent:
        async with p.transaction() as tx:
            assert await tx.claim_next_pending_run() is not None
            await tx.append_outbox([an_event(clock, "o1", "other")])
            await tx.append_outbox([an_event(clock, f"c{n}", "r1") for n in range(CLAIM_EVENTS)])
    assert len(_counter_writes(sent)) == 1  # the other run's own advance
    assert await _sequences(storage, "r1") == list(range(1, CLAIM_EVENTS + 1))
    assert await _sequences(storage, "other") == [1]


@pytest.mark.parametrize("appended", [0, 1, LOCK_EVENTS, LOCK_EVENTS + 2])
async def test_a_reading_lock_s_events_follow_on_without_a_counter_write(
    storage: SqlStorage, appended: int
) -> None:
    """A stage's outcome that locks its run reading it (a fan-out's sibling): the lock
    advances the counter by `LOCK_EVENTS`, so that many events need no UPDATE of their own;
    any other number is settled by the difference, and the sequences stay 1, 2, 3 …"""
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    _, row, _ = await a_running_stage(ports)  # r1 has event 1
    with watching(storage.engine) as sent:
        async with p.transaction() as tx:
            locked = await tx.lock_run_and_update_stage("r1", row.id, {"status": Status.COMPLETED})
            assert locked is not None and locked[1].status is Status.COMPLETED
            if appended:
                events = [an_event(clock, f"e{n}", "r1") for n in range(appended)]
                numbered = await tx.append_outbox(events)
                assert [e.sequence for e in numbered] == list(range(2, appended + 2))
    assert len(_counter_writes(sent)) == (0 if appended == LOCK_EVENTS else 1)
    later = await p.append_outbox([an_event(clock, "later", "r1")])
    assert [e.sequence for e in later] == [appended + 2]
    assert await _sequences(storage, "r1") == list(range(1, appended + 3))


@pytest.mark.parametrize("why", ["not running", "fenced off"])
async def test_a_reading_lock_that_writes_no_stage_takes_its_advance_back(
    storage: SqlStorage, why: str
) -> None:
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    _, row, _ = await a_running_stage(ports)
    if why == "not running":
        await p.update_run("r1", {"status": Status.CANCELLED})
    fence = (
        StageFence(statuses=frozenset({Status.RUNNING}), attempt=row.attempt + 1)
        if why == "fenced off"
        else None
    )
    async with p.transaction() as tx:
        locked = await tx.lock_run_and_update_stage(
            "r1", row.id, {"status": Status.COMPLETED}, fence=fence
        )
        assert locked is None
    later = await p.append_outbox([an_event(clock, "later", "r1")])
    assert [e.sequence for e in later] == [2]


@pytest.mark.parametrize("claimed", ["created", "older"])
async def test_a_run_created_and_claimed_in_one_transaction_numbers_its_events_at_once(
    storage: SqlStorage, claimed: str
) -> None:
    """`create_and_claim`: the run created, the claim, then the create's event and the
    claim's together. The claim advances the created run's counter by both, so they need
    no UPDATE of their own; when the claim takes an older run, the guess is settled."""
    clock, p = FakeClock(), storage.persistence
    if claimed == "older":
        await p.create_run(a_run(clock, "older", priority=9))
    with watching(storage.engine) as sent:
        async with p.transaction() as tx:
            await tx.create_run(a_run(clock, "new"))
            claim = await tx.claim_next_pending_run()
            assert claim is not None and claim.run.id == claimed.replace("created", "new")
            events = [an_event(clock, "created", "new")]
            events += [an_event(clock, f"s{n}", claim.run.id) for n in range(CLAIM_EVENTS)]
            await tx.append_outbox(events)
    assert len(_counter_writes(sent)) == (0 if claimed == "created" else 2)
    later = await p.append_outbox([an_event(clock, "l1", "new"), an_event(clock, "l2", "older")])
    if claimed == "created":
        assert await _sequences(storage, "new") == list(range(1, CLAIM_EVENTS + 3))
    else:
        assert [e.sequence for e in later] == [2, CLAIM_EVENTS + 1]
        assert await _sequences(storage, "older") == list(range(1, CLAIM_EVENTS + 2))


async def test_a_run_created_beside_a_held_lock_is_inserted_with_its_events(
    storage: SqlStorage,
) -> None:
    """A stage's outcome whose run's lock is held that creates another run (a child, say):
    the new run's events are numbered in its INSERT, as without the lock, and the held
    lock is written at the end, with no counter UPDATE."""
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    run, row, _ = await a_running_stage(ports)
    with watching(storage.engine) as sent:
        async with p.transaction() as tx:
            await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
            )
            await tx.create_run(a_run(clock, "child"))
            await tx.append_outbox([an_event(clock, "created", "child")])
    assert _counter_writes(sent) == []
    assert await _sequences(storage, "child") == [1]
    later = await p.append_outbox([an_event(clock, "l1", "child"), an_event(clock, "l2", "r1")])
    assert [e.sequence for e in later] == [2, 2]


async def test_a_reading_lock_then_a_claim_number_both_runs_on(storage: SqlStorage) -> None:
    """Two runs advanced ahead in one transaction (a sibling's lock, then the claim of the
    next run): each keeps its own advance until its events come."""
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    _, row, _ = await a_running_stage(ports)
    await p.create_run(a_run(clock, "r2"))
    async with p.transaction() as tx:
        assert await tx.lock_run_and_update_stage("r1", row.id, {"status": Status.COMPLETED})
        await tx.update_run("r1", {"status": Status.COMPLETED})
        claim = await tx.claim_next_pending_run()
        assert claim is not None and claim.run.id == "r2"
        pairs = [("a", "r1"), ("b", "r1"), ("c", "r2"), ("d", "r2")]
        events = [an_event(clock, name, run) for name, run in pairs]
        await tx.append_outbox(events)
    assert await _sequences(storage, "r1") == [1, 2, 3]
    assert await _sequences(storage, "r2") == [1, 2]


@pytest.mark.parametrize("between", [0, 1])
async def test_two_reading_locks_of_one_run_add_their_guesses(
    storage: SqlStorage, between: int
) -> None:
    """A run locked twice before (or after some of) its events: its counter was advanced
    by both locks, and what was not appended is taken back, without a gap."""
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    _, row, _ = await a_running_stage(ports)
    async with p.transaction() as tx:
        assert await tx.lock_run_and_update_stage("r1", row.id, {"status": Status.RUNNING})
        await tx.append_outbox([an_event(clock, f"b{n}", "r1") for n in range(between)])
        assert await tx.lock_run_and_update_stage("r1", row.id, {"status": Status.COMPLETED})
        await tx.append_outbox([an_event(clock, "a", "r1")])
    later = await p.append_outbox([an_event(clock, "later", "r1")])
    assert [e.sequence for e in later] == [between + 3]
    assert await _sequences(storage, "r1") == list(range(1, between + 4))


@pytest.mark.parametrize("other", ["r2", "no such run"])
async def test_runs_interleaved_in_one_append_are_numbered_each_on(
    storage: SqlStorage, other: str
) -> None:
    """Events of two runs interleaved in one append beside a lock: each run's in order,
    none repeated, also for a run without a row (numbered from its events)."""
    ports = store_ports(storage)
    clock, p = ports.clock, storage.persistence
    _, row, _ = await a_running_stage(ports)
    await p.create_run(a_run(clock, "r2"))
    async with p.transaction() as tx:
        assert await tx.lock_run_and_update_stage("r1", row.id, {"status": Status.COMPLETED})
        interleaved = [("a", "r1"), ("c", other), ("b", "r1"), ("d", other)]
        numbered = await tx.append_outbox([an_event(clock, n, run) for n, run in interleaved])
    assert [(e.run_id, e.sequence) for e in numbered] == [
        ("r1", 2),
        (other, 1),
        ("r1", 3),
        (other, 2),
    ]
    assert await _sequences(storage, other) == [1, 2]
    later = await p.append_outbox([an_event(clock, "l", "r1")])
    assert [e.sequence for e in later] == [4]
