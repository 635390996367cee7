"""Stages handed to the worker that queued them start in the transition that opens their group.

The transition creates their rows RUNNING with `stage:started`, so `job.execute`
has no start left to record; the stages a worker has no slot for are queued
PENDING and start, as before, when a worker dequeues them.
"""

from __future__ import annotations

from tests.kernel.helpers import event_types, stage_of, start, step
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.records import Status
from wfc.testing import SlotTaker, TestKernel


async def test_a_handed_stage_starts_in_the_transition_and_is_not_started_again(
    tk: TestKernel,
) -> None:
    run_id = await start(tk, "fanout")
    worker = SlotTaker(1)
    with handing_off_to(worker):
        assert (await step(tk)).outcome == "completed"  # split; opens [upper, length]
    assert [job.stage_id for job in worker.taken] == ["upper"]
    upper = await stage_of(tk, run_id, "upper")
    assert upper.status is Status.RUNNING and upper.attempt == 1
    assert upper.started_at is not None
    assert (await stage_of(tk, run_id, "length")).status is Status.PENDING
    assert (await event_types(tk, run_id))[-2:] == ["stage:completed", "stage:started"]

    handed = worker.taken[0]
    assert (await process_job(tk.kernel, handed)).outcome == "completed"
    done = await stage_of(tk, run_id, "upper")
    assert done.status is Status.COMPLETED and done.started_at == upper.started_at
    assert (await step(tk)).outcome == "completed"  # length, dequeued: starts itself
    assert (await stage_of(tk, run_id, "length")).attempt == 1
    assert (await step(tk)).outcome == "completed"  # join, queued PENDING: no taker
    run = await tk.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED
    types = await event_types(tk, run_id)
    assert types.count("stage:started") == 4 and types.count("stage:completed") == 4


async def test_a_redelivered_handed_stage_records_its_new_start(tk: TestKernel) -> None:
    """A handed job given back unstarted (its worker stopped) runs as a later attempt, and
    that attempt's start is recorded like any other redelivery's."""
    run_id = await start(tk, "linear")
    worker = SlotTaker(1)
    with handing_off_to(worker):
        await step(tk)  # split; count is handed
    await tk.jobs.release(worker.taken[0].id)
    assert (await step(tk)).outcome == "completed"
    count = await stage_of(tk, run_id, "count")
    assert count.status is Status.COMPLETED and count.attempt == 2
    assert (await event_types(tk, run_id)).count("stage:started") == 3
