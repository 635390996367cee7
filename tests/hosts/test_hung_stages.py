"""Stage code that never returns does not poison a worker: its slot frees when the stage
times out or its run ends, the pool has room for the threads left behind, and a worker
holding too many of them gives up so it can be replaced."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from tests.hosts.conftest import memory_storage
from wfc.plan import RetryPolicy
from wfc.runtime import RunCancel, RunCreate, Status, WorkerHost, WorkflowBuilder, define_stage
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.hosts.threads import StageThreads
from wfc.runtime.hosts.wiring import with_default_stage_timeout
from wfc.runtime.kernel import Kernel
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow

WAIT = timedelta(seconds=10)
ONCE = RetryPolicy(max_attempts=1)


class Empty(BaseModel):
    pass


class Done(BaseModel):
    done: bool


@pytest.fixture
def hang() -> Iterator[threading.Event]:
    """Set by the test when it ends (and here): every hung stage thread returns then."""
    released = threading.Event()
    yield released
    released.set()


def _workflows(hang: threading.Event, hung_timeout_ms: int | None) -> list[Workflow]:
    """`hung`: a plain `def` stage that blocks its thread until the test ends; `healthy`."""

    def hung(ctx: Any) -> Done:
        hang.wait(timeout=30)  # a bound, should a test fail before it releases them
        return Done(done=True)

    def healthy(ctx: Any) -> Done:
        return Done(done=True)

    return [
        WorkflowBuilder("hung", "Hung", input=Empty)
        .pipe(
            define_stage(
                id="stuck", output=Done, execute=hung, timeout_ms=hung_timeout_ms, retry=ONCE
            )
        )
        .build(),
        WorkflowBuilder("healthy", "Healthy", input=Empty)
        .pipe(define_stage(id="fine", output=Done, execute=healthy, timeout_ms=2_000))
        .build(),
    ]


def _kernel(hang: threading.Event, hung_timeout_ms: int | None = None) -> Kernel:
    return make_kernel(memory_storage(), WorkflowMap(_workflows(hang, hung_timeout_ms)))


async def _create(kernel: Kernel, workflow_id: str) -> str:
    created = await kernel.dispatch(
        RunCreate(idempotency_key=kernel.deps.ids.new_id(), workflow_id=workflow_id, input={})
    )
    return created.workflow_run_id


def _worker(kernel: Kernel, **settings: Any) -> WorkerHost:
    options: dict[str, Any] = {
        "orchestration_interval": timedelta(seconds=60),
        "job_poll_interval": timedelta(milliseconds=20),
        "shutdown_grace": timedelta(0),
        "max_abandoned_threads": 50,
    }
    return WorkerHost(kernel, **(options | settings))


async def test_the_pool_counts_a_thread_whose_waiter_gave_up_until_it_returns(
    hang: threading.Event,
) -> None:
    changes: list[int] = []
    loop = asyncio.get_running_loop()
    returned = asyncio.Event()

    def on_change(count: int) -> None:
        changes.append(count)
        if count == 0:
            loop.call_soon_threadsafe(returned.set)

    pool = StageThreads(2, on_change=on_change)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(pool, hang.wait), 0.05)
    assert pool.abandoned == 1
    hang.set()
    await asyncio.wait_for(returned.wait(), WAIT.total_seconds())
    assert pool.abandoned == 0 and changes == [1, 0]
    assert await loop.run_in_executor(pool, lambda: 42) == 42
    pool.shutdown()


async def test_healthy_stages_run_after_more_hung_stages_than_asyncio_s_default_pool_holds(
    hang: threading.Event,
) -> None:
    kernel = _kernel(hang, hung_timeout_ms=50)
    worker = _worker(kernel, concurrency=2)
    default_pool = min(32, (os.cpu_count() or 1) + 4)
    await worker.start()
    try:
        for _ in range(default_pool + 1):  # each times out and leaves its thread blocked
            hung = await wait_for_run(kernel, await _create(kernel, "hung"), timeout=WAIT)
            assert hung.status is Status.FAILED
            assert "timed out" in str(hung.error)
        assert worker.stats().abandoned_threads == default_pool + 1
        fine = await wait_for_run(kernel, await _create(kernel, "healthy"), timeout=WAIT)
        assert fine.status is Status.COMPLETED
    finally:
        hang.set()  # before the loop closes: closing it waits for its executor's threads
        await worker.stop()


async def test_a_cancelled_run_frees_the_slot_of_its_hung_stage(hang: threading.Event) -> None:
    kernel = _kernel(hang)  # no timeout: only the run's end can free the slot
    worker = _worker(kernel, concurrency=1, heartbeat_interval=timedelta(milliseconds=20))
    await worker.start()
    try:
        run_id = await _create(kernel, "hung")
        worker.wake_claims()
        started = asyncio.Event()

        async def on_change(snapshot: Any) -> None:
            if any(stage.status is Status.RUNNING for stage in snapshot.stages):
                started.set()

        watching = asyncio.create_task(wait_for_run(kernel, run_id, on_change=on_change))
        await asyncio.wait_for(started.wait(), WAIT.total_seconds())
        await kernel.dispatch(RunCancel(workflow_run_id=run_id))
        assert (await asyncio.wait_for(watching, WAIT.total_seconds())).status is Status.CANCELLED
        fine = await wait_for_run(kernel, await _create(kernel, "healthy"), timeout=WAIT)
        assert fine.status is Status.COMPLETED  # the only slot was free again
        stats = worker.stats()
        assert stats.abandoned_threads == 1 and stats.in_flight == 0
        (job,) = await kernel.deps.jobs.jobs_of_run(run_id)
        assert job.status in (Status.FAILED, Status.CANCELLED)  # not left RUNNING
    finally:
        hang.set()  # before the loop closes: closing it waits for its executor's threads
        await worker.stop()


async def test_a_worker_with_too_many_abandoned_threads_gives_up(hang: threading.Event) -> None:
    kernel = _kernel(hang, hung_timeout_ms=30)
    worker = _worker(kernel, concurrency=1, max_abandoned_threads=1)
    for _ in range(3):
        await _create(kernel, "hung")
    healthy = await _create(kernel, "healthy")
    try:
        stats = await asyncio.wait_for(worker.serve(), WAIT.total_seconds())
    finally:
        hang.set()
    assert stats.gave_up is not None and "--max-abandoned-threads 1" in stats.gave_up
    assert stats.abandoned_threads == 2
    assert not worker.running
    # It stopped taking work: what it did not start is left for a healthy worker.
    run = await kernel.deps.persistence.get_run(healthy)
    assert run is not None and run.status is Status.PENDING
    assert not [
        job
        for run in await kernel.deps.persistence.list_runs(limit=10)
        for job in await kernel.deps.jobs.jobs_of_run(run.id)
        if job.status is Status.RUNNING
    ]


def test_stages_without_a_timeout_get_the_default_and_the_plan_keeps_its_fingerprint(
    hang: threading.Event,
) -> None:
    hung, healthy = _workflows(hang, hung_timeout_ms=None)
    bounded = with_default_stage_timeout(hung, timedelta(minutes=5))
    stage = bounded.stage("stuck")
    assert stage is not None and stage.timeout_ms == 300_000
    assert bounded.plan.fingerprint == hung.plan.fingerprint  # runs created before still match
    assert with_default_stage_timeout(healthy, timedelta(minutes=5)) is healthy  # its own kept
    assert with_default_stage_timeout(hung, None) is hung
