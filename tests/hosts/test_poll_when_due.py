"""A worker polls a suspended stage when the stage says it is due (`poll every`), not on its
next maintenance tick."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from tests.hosts.conftest import memory_storage
from wfc.plan import PollPolicy
from wfc.runtime import (
    NotReady,
    Ready,
    RunCreate,
    Status,
    Suspend,
    WorkerHost,
    WorkflowBuilder,
    define_stage,
)
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.registry import WorkflowMap

POLLS = 4  # `check` is ready on this poll


class Empty(BaseModel):
    pass


class Done(BaseModel):
    polls: int


async def test_a_stage_polled_every_100ms_finishes_long_before_the_next_tick() -> None:
    async def submit(ctx: Any) -> Suspend:
        return Suspend(state={"polls": 0})

    async def check(state: dict[str, Any], ctx: Any) -> Any:
        state["polls"] += 1
        return Ready(output=Done(polls=state["polls"])) if state["polls"] >= POLLS else NotReady()

    workflow = (
        WorkflowBuilder("waits", "Waits", input=Empty)
        .pipe(
            define_stage(
                id="wait",
                output=Done,
                execute=submit,
                check_completion=check,
                poll=PollPolicy(interval_ms=100, max_wait_ms=60_000),
            )
        )
        .build()
    )
    kernel = make_kernel(memory_storage(), WorkflowMap([workflow]))
    worker = WorkerHost(
        kernel,
        orchestration_interval=timedelta(minutes=10),  # a test that ends proves the polls
        job_poll_interval=timedelta(milliseconds=20),
        shutdown_grace=timedelta(0),
    )
    await worker.start()
    try:
        created = await kernel.dispatch(
            RunCreate(idempotency_key="waits-1", workflow_id="waits", input={})
        )
        worker.wake_claims()
        done = await wait_for_run(kernel, created.workflow_run_id, timeout=timedelta(seconds=5))
    finally:
        await worker.stop()
    assert done.status is Status.COMPLETED and done.output == {"polls": POLLS}
    assert worker.stats().orchestration_ticks == 1  # the polls were not full ticks
