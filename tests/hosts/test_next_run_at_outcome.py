"""A worker whose runs wait PENDING for want of room claims the next one in the outcome
that ends a run (`WorkerHost.room_for_next_run`): a burst served by one slot needs no
`run.claimPending` after its first (memory, SQLite, PostgreSQL). Never while stopping."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.hosts.conftest import Backend
from tests.hosts.test_created_beside_host import DOC, SLOW, WITHIN, _claims
from wfc.runtime import RunCreate, Status, WorkerHost
from wfc.runtime.hosts import wait_for_run
from wfc.runtime.kernel import Kernel


def _one_slot(kernel: Kernel) -> WorkerHost:
    return WorkerHost(
        kernel,
        worker_id="burst",
        concurrency=1,
        orchestration_interval=SLOW,
        job_poll_interval=SLOW,
        shutdown_grace=timedelta(seconds=5),
    )


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
        for n in range(3)
    ]
    worker = _one_slot(kernel)
    with _claims(kernel) as claims:
        await worker.start()  # its first tick claims the oldest run: one slot, the rest wait
        try:
            for run_id in runs:
                run = await wait_for_run(kernel, run_id, timeout=WITHIN)
                assert run.status is Status.COMPLETED
            await asyncio.sleep(0.1)  # a claim a freed slot would make comes now
        finally:
            await worker.stop()
    assert worker.orchestrator.ticks == 1 and worker.jobs_taken == 9
    # The tick's; each next run was claimed by the outcome that ended the one before (one
    # claim more if the first run ended before the tick's other steps did: then its slot
    # freed up before the tick said runs wait). A claim per freed slot would make four.
    assert len(claims) <= 2


async def test_a_worker_has_room_for_a_next_run_only_in_a_finishing_slot_while_serving(
    backend: Backend,
) -> None:
    worker = _one_slot(backend.kernel())

    async def asked_by_a_slot() -> bool:
        answers: list[bool] = []

        async def probe() -> None:
            answers.append(worker.room_for_next_run())

        slot = asyncio.create_task(probe())
        worker._jobs_running.add(slot)  # as `_start_job` registers a slot
        try:
            await slot
        finally:
            worker._jobs_running.discard(slot)
        return answers[0]

    assert not await asked_by_a_slot()  # no run left waiting for want of room
    worker.orchestrator.claimed_at_outcome("any", jobs_waiting=False, others_pending=True)
    assert await asked_by_a_slot()
    assert not worker.room_for_next_run()  # not asked by a slot: nothing to hand the run to
    worker._stopping.set()  # stopping: claim nothing more
    assert not await asked_by_a_slot()


async def test_an_outcome_that_claimed_the_last_waiting_run_stops_the_next_claims(
    backend: Backend,
) -> None:
    worker = _one_slot(backend.kernel())
    worker.orchestrator.claimed_at_outcome("one", jobs_waiting=False, others_pending=True)
    assert worker.orchestrator.claims_waiting
    worker.orchestrator.claimed_at_outcome("next", jobs_waiting=False, others_pending=False)
    assert not worker.orchestrator.claims_waiting
    worker.orchestrator.claimed_at_outcome("next", jobs_waiting=False, others_pending=True)
    assert worker.orchestrator.claims_waiting
    # Nothing started: the slot freeing up claims as it did before (and leads claims).
    worker.orchestrator.claimed_at_outcome(None, jobs_waiting=False, others_pending=False)
    assert worker.orchestrator.claims_waiting


async def test_a_claim_that_used_up_the_room_claims_again_if_a_slot_freed_meanwhile(
    backend: Backend,
) -> None:
    """The run it handed a slot may end before the claim (a tick's) is settled: the slot
    freed up while no runs were said to wait, and nothing else would claim until a poll."""
    worker = _one_slot(backend.kernel())
    assert worker.free_slots() == 1  # the run the claim handed over has ended already
    assert not worker.orchestrator._settle_claim(claimed=1, room=1)
    assert worker.orchestrator._claim_now  # claims again at once
