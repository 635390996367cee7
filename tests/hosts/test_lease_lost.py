"""A worker whose lease was taken back stops waiting for its stage: the slot frees, and
the job, now another delivery's, is left alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from wfc.runtime import LeaseReapStale, RunClaimPending, WorkflowBuilder, define_stage
from wfc.runtime.hosts import process_job
from wfc.runtime.records import Status
from wfc.testing import make_test_kernel


class Doc(BaseModel):
    text: str


async def slow(ctx: Any) -> Doc:
    await asyncio.sleep(30)  # far longer than the test: only a cancel ends it
    return Doc(text=ctx.input.text)


WORKFLOW = (
    WorkflowBuilder("slow", "Slow", input=Doc)
    .pipe(define_stage(id="wait", input=Doc, output=Doc, execute=slow))
    .build()
)


async def test_a_heartbeat_that_finds_its_lease_taken_abandons_the_stage() -> None:
    tk = make_test_kernel(WORKFLOW)
    await tk.create_run("slow", {"text": "hi"})
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1"))
    (first,) = await tk.jobs.dequeue()
    running = asyncio.create_task(
        process_job(tk.kernel, first, heartbeat_every=timedelta(milliseconds=50))
    )
    await asyncio.sleep(0.01)
    tk.clock.advance(timedelta(minutes=10))  # the worker looked dead: its lease is reaped
    await tk.kernel.dispatch(LeaseReapStale(stale_threshold_ms=60_000))
    (second,) = await tk.jobs.dequeue()  # and another worker took the job
    outcome = await asyncio.wait_for(running, timeout=5)
    assert outcome.outcome == "failed" and "no longer leased at attempt 1" in (outcome.error or "")
    (job,) = await tk.all_jobs()
    assert (job.status, job.attempt, job.last_error) == (Status.RUNNING, second.attempt, None)
