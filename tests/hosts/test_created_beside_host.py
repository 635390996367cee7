"""Hosts that take the runs created in their process in the create's transaction
(`Kernel.offer_slots`): `run_and_wait`'s own host and a serving worker need no claim of
their own for them; a worker told of runs by wakeups, a stopped one, and a stage creating a
run from a busy slot leave them PENDING (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.databases import open_storage
from tests.hosts.conftest import Backend
from tests.kernel.conftest import Doc, Script, Words, build_workflows
from wfc.runtime import (
    RunClaimPending,
    RunCreate,
    Status,
    WorkerHost,
    WorkflowBuilder,
    define_stage,
)
from wfc.runtime.adapters.sql import direct
from wfc.runtime.hosts import make_kernel, run_and_wait, wait_for_run
from wfc.runtime.kernel import Kernel
from wfc.runtime.registry import WorkflowMap

DOC = {"text": "the quick brown fox"}
SLOW = timedelta(seconds=60)  # no poll or tick comes during a test
WITHIN = timedelta(seconds=20)


@contextmanager
def _claims(kernel: Kernel) -> Iterator[list[RunClaimPending]]:
    """Every `run.claimPending` the kernel is sent while the block runs."""
    sent: list[RunClaimPending] = []
    real = kernel.dispatch

    async def dispatch(command: Any) -> Any:
        if isinstance(command, RunClaimPending):
            sent.append(command)
        return await real(command)

    kernel.dispatch = dispatch  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        del kernel.dispatch


def _host(kernel: Kernel, **settings: Any) -> WorkerHost:
    """A host that polls rarely (`SLOW`), so what it does promptly it was told to do."""
    defaults: dict[str, Any] = {
        "worker_id": "beside",
        "concurrency": 2,
        "orchestration_interval": SLOW,
        "job_poll_interval": SLOW,
        "shutdown_grace": timedelta(seconds=5),
    }
    return WorkerHost(kernel, **(defaults | settings))


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(int(WITHIN.total_seconds() / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_run_and_wait_claims_its_run_in_its_create(backend: Backend) -> None:
    kernel = backend.kernel()
    with _claims(kernel) as claims:
        run = await run_and_wait(kernel, "linear", DOC, poll_interval=SLOW, timeout=WITHIN)
    assert run.status is Status.COMPLETED
    assert claims == []
    events = [e.event_type for e in await kernel.deps.persistence.outbox_of_run(run.run_id)]
    assert events[:3] == ["workflow:created", "workflow:started", "stage:started"]


async def test_run_and_wait_on_sqlite_is_four_transactions_and_no_dequeue(
    tmp_path: Path,
) -> None:
    """Create with claim, and one per stage: the claim's own transaction, and the dequeue
    its host made before its run existed, are gone."""
    storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}")
    await storage.create_schema()
    kernel = make_kernel(storage, WorkflowMap(build_workflows(Script())))
    try:
        # No poll during the run (its end wakes the call): a poll's dequeue or claim would
        # be counted, and under load a stage can outlast a 50 ms poll.
        await run_and_wait(kernel, "linear", DOC, poll_interval=SLOW, timeout=WITHIN)
        with direct.watching(storage.engine) as sent:
            run = await run_and_wait(kernel, "linear", DOC, poll_interval=SLOW, timeout=WITHIN)
    finally:
        await storage.close()
    assert run.status is Status.COMPLETED
    assert sum(sql.startswith("COMMIT") for sql in sent) == 4
    assert not [sql for sql in sent if sql.startswith("WITH due")]


async def test_a_one_run_host_claims_nothing_once_its_create_claimed_its_run(
    backend: Backend,
) -> None:
    kernel = backend.kernel()
    worker = _host(kernel, run_id="own")
    await worker.start()
    try:
        with _claims(kernel) as claims:
            await kernel.dispatch(
                RunCreate(idempotency_key="own", workflow_id="linear", input=DOC, run_id="own")
            )
            worker.wake_claims()  # as run_and_wait does: nothing left to claim
            run = await wait_for_run(kernel, "own", timeout=WITHIN)
        assert run.status is Status.COMPLETED
        assert claims == [] and worker.orchestrator.ticks == 0
        assert worker.jobs_taken == 3
    finally:
        await worker.stop()


async def test_a_serving_host_takes_runs_created_beside_it_until_it_stops(
    backend: Backend,
) -> None:
    kernel = backend.kernel()
    worker = _host(kernel)
    await worker.start()
    await _until(lambda: worker.orchestrator.ticks == 1)  # its first tick, at once
    try:
        with _claims(kernel) as claims:
            created = await kernel.dispatch(
                RunCreate(idempotency_key="beside", workflow_id="linear", input=DOC)
            )
            run = await wait_for_run(kernel, created.workflow_run_id, timeout=WITHIN)
        assert run.status is Status.COMPLETED
        assert claims == [] and worker.jobs_taken == 3
    finally:
        await worker.stop()
    asked: list[bool] = []

    def room_for_a_run() -> bool:
        asked.append(True)
        return False

    worker.room_for_a_run = room_for_a_run  # type: ignore[method-assign]
    after = await kernel.dispatch(
        RunCreate(idempotency_key="after", workflow_id="linear", input=DOC)
    )
    stopped = await kernel.deps.persistence.get_run(after.workflow_run_id)
    assert stopped is not None and stopped.status is Status.PENDING
    assert asked == []  # withdrawn as it stopped: not even asked


async def test_a_worker_told_of_runs_by_wakeups_leaves_them_to_the_claim_lead(
    backend: Backend,
) -> None:
    if backend.wakeups is None:
        pytest.skip("memory has no wakeups")
    worker = _host(backend.kernel(), wakeups=backend.wakeups)
    await worker.start()
    try:
        assert worker.free_slots() == 2 and not worker.room_for_a_run()
    finally:
        await worker.stop()


def _spawning(kernel: list[Kernel]) -> WorkflowBuilder:
    """`spawn`: an async stage (run in its slot's own task) that creates a `linear` run and
    returns that run's status as the create left it."""

    async def spawn(ctx: Any) -> Words:
        created = await kernel[0].dispatch(
            RunCreate(idempotency_key="spawned", workflow_id="linear", input=DOC)
        )
        run = await kernel[0].deps.persistence.get_run(created.workflow_run_id)
        assert run is not None
        return Words(words=[run.status.value])

    stage = define_stage(id="spawn", input=Doc, output=Words, execute=spawn)
    return WorkflowBuilder("spawner", "Spawner", input=Doc).pipe(stage)


async def test_a_stage_creating_a_run_from_its_busy_slot_leaves_it_pending(
    backend: Backend,
) -> None:
    """Claimed there, the run's first job would wait for the stage's end in that slot, its
    lease unrenewed."""
    holder: list[Kernel] = []
    registry = WorkflowMap([*build_workflows(Script()), _spawning(holder).build()])
    kernel = make_kernel(backend.storage, registry)
    holder.append(kernel)
    worker = _host(kernel)
    await worker.start()
    try:
        await _until(lambda: worker.orchestrator.ticks == 1)
        run = await run_and_wait(kernel, "spawner", DOC, host=worker, timeout=WITHIN)
    finally:
        await worker.stop()
    assert run.status is Status.COMPLETED
    assert run.output == {"words": ["PENDING"]}


async def test_jobs_handed_to_a_host_after_it_handed_back_its_own_go_back_at_once(
    backend: Backend,
) -> None:
    """A create (or an outcome) that chose the host before it stopped commits after: the
    first stage it handed over is released for another worker, not left leased to a
    stopped one until its lease expires."""
    kernel = backend.kernel()
    await kernel.dispatch(RunCreate(idempotency_key="late", workflow_id="linear", input=DOC))
    worker = _host(kernel)
    [claimed] = (await kernel.dispatch(RunClaimPending(worker_id="beside"))).claimed
    [job] = await kernel.deps.jobs.dequeue(run_id=claimed.workflow_run_id)
    await worker.start()
    await worker.stop()
    worker.take([job], more_queued=False)
    for _ in range(int(WITHIN.total_seconds() / 0.01)):
        [row] = [j for j in await kernel.deps.jobs.jobs_of_run(job.run_id) if j.id == job.id]
        if row.status is Status.PENDING:
            break
        await asyncio.sleep(0.01)
    assert row.status is Status.PENDING and worker.jobs_taken == 0


async def test_a_one_run_host_for_a_run_with_a_queued_job_takes_it_at_once(
    backend: Backend,
) -> None:
    """Only `run_and_wait`'s host, started before its run exists, skips its first dequeue."""
    kernel = backend.kernel()
    await kernel.dispatch(
        RunCreate(idempotency_key="queued", workflow_id="linear", input=DOC, run_id="queued")
    )
    await kernel.dispatch(RunClaimPending(worker_id="elsewhere"))  # its first job queued
    worker = _host(kernel, run_id="queued")
    await worker.start()
    try:
        run = await wait_for_run(kernel, "queued", timeout=WITHIN)
    finally:
        await worker.stop()
    assert run.status is Status.COMPLETED
