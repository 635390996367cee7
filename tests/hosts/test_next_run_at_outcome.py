"""A worker whose runs wait PENDING for want of room claims the next one in the outcome
that ends a run (`WorkerHost.room_for_next_run`): a burst served by one slot needs no
`run.claimPending` after its first (memory, SQLite, PostgreSQL). Never while stopping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from tests.hosts.conftest import Backend
from tests.hosts.test_created_beside_host import DOC, WITHIN, _claims, _host, _until
from wfc.runtime import RunCreate, Status, WorkerHost
from wfc.runtime.hosts import wait_for_run
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel


def _one_slot(kernel: Kernel, **settings: Any) -> WorkerHost:
    return _host(kernel, **({"worker_id": "burst", "concurrency": 1} | settings))


class OneListener:
    """`ports.Wakeups` with one listener, woken by the test (`wake`) as another process's
    create would wake it: whether it is told of a run depends on its holding the lead."""

    def __init__(self) -> None:
        self.leading = False
        self.on_wake: Callable[[str], None] | None = None
        self._lost = asyncio.Event()  # never set

    @contextlib.asynccontextmanager
    async def listen(self, on_wake: Callable[[str], None]) -> AsyncIterator[OneListener]:
        self.on_wake = on_wake
        try:
            yield self
        finally:
            self.on_wake, self.leading = None, False

    def wake(self, what: str) -> None:
        assert self.on_wake is not None
        self.on_wake(what)

    async def lead_claims(self) -> bool:
        self.leading = True
        return True

    async def pass_on_claims(self) -> None:
        self.leading = False

    async def until_lost(self) -> None:
        await self._lost.wait()


async def test_a_burst_on_one_slot_is_claimed_by_the_outcomes_that_end_its_runs(
    backend: Backend,
) -> None:
    kernel = backend.kernel()
    runs = [
        (
            await kernel.dispatch(
                RunCreate(idempotency_key=f"burst-{n}", workflow_id="linear", input=DOC)
            )
        ).workflow_run_id
        for n in range(4)
    ]
    worker = _one_slot(kernel)
    with _claims(kernel) as claims:
        await worker.start()  # its first tick claims the oldest run: one slot, the rest wait
        try:
            for run_id in runs:
                run = await wait_for_run(kernel, run_id, timeout=WITHIN)
                assert run.status is Status.COMPLETED
            await _until(lambda: not worker._slots.running)
            await asyncio.sleep(0.1)  # a claim a freed slot would make comes now
        finally:
            await worker.stop()
    assert worker.orchestrator.ticks == 1 and worker.jobs_taken == 12
    if backend.name == "postgres":  # the last outcome stays one statement: it claims nothing
        # The tick's, then one per slot freed while runs wait: none after the last run's
        # claim, which saw no other run PENDING.
        assert len(claims) == 4
        return
    # The tick's; each next run was claimed by the outcome that ended the one before; the
    # slot freed after the burst claims once, which takes the claim lead back (one claim
    # more if the first run ended before the tick's other steps did: then its slot freed
    # up before the tick said runs wait). A claim per freed slot would make five.
    assert len(claims) <= 3


async def test_a_worker_has_room_for_a_next_run_only_in_a_finishing_slot_while_serving(
    backend: Backend,
) -> None:
    worker = _one_slot(backend.kernel())

    async def asked_by_a_slot() -> bool:
        answers: list[bool] = []

        async def probe() -> None:
            answers.append(worker.room_for_next_run())

        slot = asyncio.create_task(probe())
        worker._slots.running.add(slot)  # as `JobSlots.start` registers a slot
        try:
            await slot
        finally:
            worker._slots.running.discard(slot)
        return answers[0]

    assert not await asked_by_a_slot()  # no run left waiting for want of room
    worker.orchestrator.claimed_at_outcome("any", jobs_waiting=False, others_pending=True)
    assert await asked_by_a_slot()
    assert not worker.room_for_next_run()  # not asked by a slot: nothing to hand the run to
    worker._slots.handed.append(cast(JobRecord, "a job of a wide group, handed already"))
    assert not await asked_by_a_slot()  # its slot is promised to a job handed already
    worker._slots.handed.clear()
    worker._stopping.set()  # stopping: claim nothing more
    assert not await asked_by_a_slot()


async def test_runs_are_said_to_wait_after_an_outcome_claimed_the_last_one(
    backend: Backend,
) -> None:
    """Only a freed slot clears `claims_waiting`: its claim is an ordinary one, which takes
    the claim lead back (an outcome's claim does not)."""
    worker = _one_slot(backend.kernel())
    worker.orchestrator.claimed_at_outcome("one", jobs_waiting=False, others_pending=True)
    assert worker.orchestrator.claims_waiting
    worker.orchestrator.claimed_at_outcome("last", jobs_waiting=False, others_pending=False)
    assert worker.orchestrator.claims_waiting
    worker.orchestrator.claimed_at_outcome(None, jobs_waiting=False, others_pending=False)
    assert worker.orchestrator.claims_waiting
    worker.orchestrator.slot_freed()  # no slot busy in this worker: its one is free
    assert not worker.orchestrator.claims_waiting and worker.orchestrator._claim_now


async def test_a_worker_that_passed_the_lead_on_in_a_burst_takes_it_back_after_it(
    backend: Backend,
) -> None:
    """The lost wakeup that had this change reverted once: a burst fills the one slot, so
    the worker passes the claim lead on; the outcome that ends the first run claims the
    last one waiting. A run created afterwards by another process wakes the worker
    (`on_wake("runs")`) and must be claimed then, not at the next poll (a minute here):
    a worker only hears of created runs while it leads, so something must take the lead
    back once slots free up. Before the fix, the outcome's claim said no runs wait, no
    freed slot claimed, and the worker never led again until a poll."""
    kernel = backend.kernel()
    runs = [
        (
            await kernel.dispatch(
                RunCreate(idempotency_key=f"burst-{n}", workflow_id="linear", input=DOC)
            )
        ).workflow_run_id
        for n in range(2)
    ]
    wakeups = OneListener()
    worker = _one_slot(kernel, wakeups=wakeups)
    await worker.start()
    try:
        for run_id in runs:
            assert (await wait_for_run(kernel, run_id, timeout=WITHIN)).status is Status.COMPLETED
        await _until(lambda: not worker._slots.running)  # the last slot has freed up
        later = await kernel.dispatch(
            RunCreate(idempotency_key="later", workflow_id="linear", input=DOC)
        )
        wakeups.wake("runs")  # as the created run's commit would wake it
        run = await wait_for_run(kernel, later.workflow_run_id, timeout=WITHIN)
        assert run.status is Status.COMPLETED
    finally:
        await worker.stop()


async def test_a_claim_that_used_up_the_room_claims_again_if_a_slot_freed_meanwhile(
    backend: Backend,
) -> None:
    """The run it handed a slot may end before the claim (a tick's) is settled: the slot
    freed up while no runs were said to wait, and nothing else would claim until a poll."""
    worker = _one_slot(backend.kernel())
    assert worker.free_slots() == 1  # the run the claim handed over has ended already
    assert not worker.orchestrator._settle_claim(claimed=1, room=1, others_pending=True)
    assert worker.orchestrator._claim_now  # claims again at once


async def test_a_claim_that_used_up_the_room_and_saw_no_other_run_claims_no_more(
    backend: Backend,
) -> None:
    worker = _one_slot(backend.kernel())
    assert not worker.orchestrator._settle_claim(claimed=1, room=1, others_pending=False)
    assert not worker.orchestrator._claim_now and not worker.orchestrator.claims_waiting
    # Nor does a claim that reached its per-claim limit claim again at once.
    assert not worker.orchestrator._settle_claim(claimed=10, room=10, others_pending=False)
