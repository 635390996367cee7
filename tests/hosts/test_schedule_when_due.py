"""A worker fires a schedule at its tick, not on its next maintenance tick, and claims the
tick's run at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from tests.hosts.conftest import memory_storage
from wfc.runtime import Status, WorkerHost, WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory import SystemClock
from wfc.runtime.adapters.memory.schedules import MemoryScheduleStore
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.schedule_store import ScheduleRecord


class Empty(BaseModel):
    pass


async def test_a_schedule_due_in_300ms_fires_long_before_the_next_tick() -> None:
    def step(ctx: Any) -> Empty:
        return Empty()

    workflow = (
        WorkflowBuilder("beats", "Beats", input=Empty)
        .pipe(define_stage(id="beat", output=Empty, execute=step))
        .build()
    )
    kernel = make_kernel(memory_storage(), WorkflowMap([workflow]))
    store = MemoryScheduleStore()
    now = SystemClock().now()
    # `catch_up all` fires `next_due_at` itself: here a moment that is no cron tick.
    await store.add(
        ScheduleRecord(
            id="s1",
            workflow_id="beats",
            name="soon",
            cron="0 0 1 1 *",
            timezone="UTC",
            input={},
            catch_up="all",
            overlap="skip",
            paused=False,
            source="cli",
            next_due_at=now + timedelta(milliseconds=300),
            created_at=now,
            updated_at=now,
        )
    )
    worker = WorkerHost(
        kernel,
        orchestration_interval=timedelta(minutes=10),  # a test that ends proves the wakeup
        job_poll_interval=timedelta(minutes=10),
        shutdown_grace=timedelta(0),
        schedules=store,
    )
    await worker.start()
    try:
        while (row := await store.get("beats", "soon")) is None or row.last_run_id is None:
            await asyncio.sleep(0.02)
        done = await wait_for_run(kernel, row.last_run_id, timeout=timedelta(seconds=5))
    finally:
        await worker.stop()
    assert done.status is Status.COMPLETED
    run = await kernel.deps.persistence.get_run(row.last_run_id)
    assert run is not None and run.created_at >= now + timedelta(milliseconds=300)  # not before
    assert worker.stats().orchestration_ticks == 1  # the firing was no full tick
