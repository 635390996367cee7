"""Items recorded and handed on without the run's lock (`Persistence.hand_on_item`, one
statement on PostgreSQL) stay fenced: a delivery paused past its lease, a cancel and a
failed stage each win over it, on memory, SQLite and PostgreSQL alike.

Each case pauses the body of item 1 of a 40-item map (`at_most` 2): an item that is
neither the last, nor one that reports progress (every other one of 40), nor in the tail,
so on PostgreSQL its outcome takes the one-statement path.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import kernel_on_storage
from tests.kernel.helpers import Item, mapped
from wfc.plan import RetryPolicy
from wfc.runtime import RunCancel, RunRerunFrom
from wfc.runtime.hosts import JobOutcome, process_job
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel.warm import WarmStart
from wfc.runtime.records import Status
from wfc.testing import TestKernel

COUNT = 40
PAUSED = 1


calls: Counter[int] = Counter()
pause = (threading.Event(), threading.Event())  # (entered, release)
failing: set[int] = set()


def touch(ctx: Any) -> Item:
    index: int = ctx.item_index
    calls[index] += 1
    entered, release = pause
    if index == PAUSED and calls[index] == 1:
        entered.set()
        release.wait(10)
    if index in failing:
        raise ValueError(f"item {index} is bad")
    return Item(n=ctx.input.n + 1)


# Up to 3 deliveries of an item, but a ValueError (a bad item) fails it for good.
_workflow = mapped(
    touch, at_most=2, retry=RetryPolicy(max_attempts=3, non_retryable=("ValueError",))
)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def mk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    calls.clear()
    failing.clear()
    for event in pause:
        event.clear()
    async with kernel_on_storage(request.param, [_workflow], tmp_path) as kernel:
        yield kernel
    pause[1].set()


async def _opened(mk: TestKernel) -> tuple[str, dict[int, JobRecord]]:
    """A run whose map is open, and its first items' jobs leased, by item index."""
    run_id = await mk.create_run("mapped", {"items": [{"n": n} for n in range(COUNT)]})
    await mk.tick()
    leased = await mk.jobs.dequeue(limit=10)
    return run_id, {job.payload["item"]: job for job in leased}


async def _paused(mk: TestKernel, job: JobRecord) -> asyncio.Task[JobOutcome]:
    """Item `PAUSED`'s delivery `job`, running until its body is released."""
    task = asyncio.create_task(process_job(mk.kernel, job))
    assert await asyncio.to_thread(pause[0].wait, 10)
    return task


def _discarded(outcome: JobOutcome) -> None:
    """The paused delivery's result was a ghost's: discarded, not recorded."""
    assert outcome.outcome == "failed" and "result discarded" in (outcome.error or ""), outcome


async def _stage(mk: TestKernel, run_id: str) -> Any:
    [row] = await mk.persistence.stages_of_run(run_id)
    return row


async def _item(mk: TestKernel, run_id: str, index: int) -> Any:
    items = await mk.persistence.items_of_stage(run_id, "touch")
    return next(item for item in items if item.item_index == index)


async def _open_jobs(mk: TestKernel, run_id: str) -> list[JobRecord]:
    jobs = await mk.jobs.jobs_of_run(run_id)
    return [job for job in jobs if job.status in (Status.PENDING, Status.RUNNING)]


async def test_a_delivery_paused_past_its_lease_cannot_commit_an_item_another_committed(
    mk: TestKernel,
) -> None:
    run_id, jobs = await _opened(mk)
    late = await _paused(mk, jobs[PAUSED])
    await mk.jobs.release(jobs[PAUSED].id)  # its lease reaped: delivered again
    [again] = [job for job in await mk.jobs.dequeue(limit=10) if job.payload["item"] == PAUSED]
    assert again.attempt == 2
    assert (await process_job(mk.kernel, again)).outcome == "completed"
    pause[1].set()
    _discarded(await late)
    item = await _item(mk, run_id, PAUSED)
    assert (item.status, item.attempt) == (Status.COMPLETED, 2)
    row = await _stage(mk, run_id)
    assert (row.items_done, row.items_next) == (1, 3)  # counted once, one next item queued
    queued = sorted(job.payload["item"] for job in await _open_jobs(mk, run_id))
    assert queued == [0, 2]  # item 0 still leased, item 2 queued once
    run = await mk.drive(run_id)
    assert run.status is Status.COMPLETED, run.error
    assert len(run.output) == COUNT and calls[PAUSED] == 2
    assert all(calls[index] == 1 for index in range(COUNT) if index != PAUSED)


async def test_a_cancel_mid_map_wins_over_an_item_that_finishes_after_it(
    mk: TestKernel,
) -> None:
    run_id, jobs = await _opened(mk)
    late = await _paused(mk, jobs[PAUSED])
    cancelled = await mk.kernel.dispatch(RunCancel(workflow_run_id=run_id, reason="enough"))
    assert cancelled.cancelled
    pause[1].set()
    _discarded(await late)
    item = await _item(mk, run_id, PAUSED)
    assert item.status is Status.CANCELLED
    row = await _stage(mk, run_id)
    assert (row.status, row.items_done, row.items_next) == (Status.CANCELLED, 0, 2)
    # No next item was queued after the cancel; item 0's job is still leased (never run).
    assert sorted(job.payload["item"] for job in await mk.jobs.jobs_of_run(run_id)) == [0, 1]
    assert [job.payload["item"] for job in await _open_jobs(mk, run_id)] == [0]


async def test_an_item_that_finishes_after_its_stage_failed_is_not_counted(
    mk: TestKernel,
) -> None:
    run_id, jobs = await _opened(mk)
    late = await _paused(mk, jobs[PAUSED])
    failing.add(0)
    assert (await process_job(mk.kernel, jobs[0])).outcome == "failed"
    assert (await _stage(mk, run_id)).status is Status.FAILED
    pause[1].set()
    _discarded(await late)
    row = await _stage(mk, run_id)
    assert (row.status, row.items_done, row.items_failed, row.items_next) == (
        Status.FAILED,
        0,
        1,
        2,
    )
    # Cancelled with the stage's failure: the delivery still running it had its outcome
    # refused, and would have left it RUNNING in the failed stage (and run).
    assert (await _item(mk, run_id, PAUSED)).status is Status.CANCELLED
    assert (await _item(mk, run_id, 0)).status is Status.FAILED
    assert await _open_jobs(mk, run_id) == []


async def test_an_item_started_warm_after_a_rerun_does_not_block_the_new_pass(
    mk: TestKernel,
) -> None:
    """A handed-on item starts from what the item before it read, without reading the run:
    a rerun landing in between is caught by its outcome's fence, but its start has already
    written its row (pass 0, attempt 1). The new pass's delivery of that item, attempt 1
    as well, must take the row over: refused, it would wait for a retry of its job, and a
    stage without retries would fail for nothing."""
    pause[1].set()  # no item waits here
    run_id, jobs = await _opened(mk)
    found = await mk.persistence.run_with_stages(run_id, data=False)
    assert found is not None
    run, rows = found
    failing.add(0)
    assert (await process_job(mk.kernel, jobs[0])).outcome == "failed"
    assert (await mk.drive(run_id)).status is Status.FAILED
    failing.clear()
    await mk.kernel.dispatch(RunRerunFrom(workflow_run_id=run_id, from_stage_id="touch"))
    stale = jobs[PAUSED]
    warm = WarmStart(run=run, rows=rows, outputs={})
    mk.kernel.deps.warm.put_item("touch", PAUSED, stale.attempt, warm)
    _discarded(await process_job(mk.kernel, stale))
    items = await mk.persistence.items_of_stage(run_id, "touch")
    assert PAUSED not in [item.item_index for item in items]  # the stale start wrote nothing
    done = await mk.drive(run_id)
    assert done.status is Status.COMPLETED, done.error
    assert [item["n"] for item in done.output] == [n + 1 for n in range(COUNT)]
    # Started by the new pass's first delivery: not refused, and so not left to a retry
    # (which a stage without retries does not have).
    assert (await _item(mk, run_id, PAUSED)).attempt == 1


async def test_an_item_started_warm_after_a_cancel_leaves_no_running_item(
    mk: TestKernel,
) -> None:
    """A handed-on item starts from what the item before it read: a cancel landing
    between the hand-on and the start is not seen by the start, whose row alone would
    write a RUNNING item into the cancelled run (its outcome is refused, so the row would
    stay RUNNING). The start is fenced on its stage's row: nothing is written."""
    pause[1].set()  # no item waits here
    run_id, jobs = await _opened(mk)
    assert (await process_job(mk.kernel, jobs[0])).outcome == "completed"
    found = await mk.persistence.run_with_stages(run_id, data=False)
    assert found is not None
    run, rows = found  # what the hand-on proved: the run and its stage RUNNING
    cancelled = await mk.kernel.dispatch(RunCancel(workflow_run_id=run_id, reason="enough"))
    assert cancelled.cancelled
    stale = jobs[PAUSED]
    warm = WarmStart(run=run, rows=rows, outputs={})
    mk.kernel.deps.warm.put_item("touch", PAUSED, stale.attempt, warm)
    _discarded(await process_job(mk.kernel, stale))
    assert calls[PAUSED] == 0  # refused at its start, before its body
    items = await mk.persistence.items_of_stage(run_id, "touch")
    assert [(item.item_index, item.status) for item in items] == [(0, Status.COMPLETED)]
    assert (await _stage(mk, run_id)).status is Status.CANCELLED
