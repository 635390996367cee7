"""A worker wakes a sleeping stage when it is due, not at its next poll of the queue: the
sleep's timer is a job it queued itself, and it looks for that job at that moment."""

from __future__ import annotations

import time
from datetime import timedelta

from tests.hosts.conftest import memory_storage
from tests.kernel.waiting import sleepy
from wfc.plan import SleepSpec
from wfc.runtime import RunCreate, Status, WorkerHost
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.registry import WorkflowMap


async def test_a_300ms_sleep_wakes_on_time_though_the_worker_polls_every_minute() -> None:
    kernel = make_kernel(memory_storage(), WorkflowMap([sleepy(SleepSpec(duration_ms=300))]))
    worker = WorkerHost(
        kernel,
        orchestration_interval=timedelta(minutes=10),
        job_poll_interval=timedelta(minutes=1),  # a test that ends proves the wakeup
        shutdown_grace=timedelta(0),
    )
    await worker.start()
    try:
        started = time.monotonic()
        created = await kernel.dispatch(
            RunCreate(idempotency_key="nap-1", workflow_id="sleepy", input={"text": "hi"})
        )
        worker.wake_claims()
        done = await wait_for_run(kernel, created.workflow_run_id, timeout=timedelta(seconds=5))
        took = time.monotonic() - started
    finally:
        await worker.stop()
    assert done.status is Status.COMPLETED
    assert 0.3 <= took < 1.5, took
    assert worker.stats().orchestration_ticks == 1
