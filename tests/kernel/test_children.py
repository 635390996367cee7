"""Child workflows on memory, SQLite and PostgreSQL, with a fake clock.

A child stage starts its child run in the transaction that leaves it SUSPENDED, holding
no job; the child's final transaction settles it (completed with the child's output, a
retry queued for a new child, or failed). Cancelling cascades down; a cancelled child
fails its parent's stage. Redeliveries never create a second child, and a child ending
as its parent is cancelled gives one outcome.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.databases import kernel_on_storage
from tests.kernel.children import Faults, workflows
from wfc.plan import MAX_CHILD_DEPTH
from wfc.runtime import RunCancel, RunClaimPending
from wfc.runtime.adapters.memory.persistence import MemoryPersistence
from wfc.runtime.adapters.memory.persistence import _MemoryStore as memory_store
from wfc.runtime.commands import JobExecute
from wfc.runtime.kernel.children import child_run_id
from wfc.runtime.records import ACTIVE, RunRecord, StageRecord, Status
from wfc.testing import TestKernel


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(
    request: pytest.FixtureRequest, tmp_path: Path, faults: Faults
) -> AsyncIterator[TestKernel]:
    async with kernel_on_storage(request.param, workflows(faults), tmp_path) as kernel:
        yield kernel


async def _run(tk: TestKernel, run_id: str) -> RunRecord:
    run = await tk.persistence.get_run(run_id)
    assert run is not None
    return run


async def _row(tk: TestKernel, run_id: str, stage_id: str = "call") -> StageRecord:
    row = await tk.persistence.get_stage(run_id, stage_id)
    assert row is not None
    return row


async def _output(tk: TestKernel, run_id: str, stage_id: str = "call") -> Any:
    row = await _row(tk, run_id, stage_id)
    assert row.output_ref is not None
    return json.loads(await tk.blobs.get(row.output_ref))


async def _waiting(tk: TestKernel, workflow_id: str = "parent", n: int = 1) -> str:
    """A parent run whose child stage ran: it waits for its child, which is not claimed."""
    run_id = await tk.create_run(workflow_id, {"n": n})
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", workflow_run_id=run_id))
    await tk.work()
    assert (await _row(tk, run_id)).status is Status.SUSPENDED
    return run_id


async def _children(tk: TestKernel, run_id: str) -> list[RunRecord]:
    return await tk.persistence.children_of(run_id)


def _call(run_id: str, attempt: int, job_id: str | None = None) -> JobExecute:
    """A delivery of the parent's `call` job (a redelivery when `attempt` is past the first)."""
    return JobExecute(
        workflow_run_id=run_id,
        workflow_id="parent",
        stage_id="call",
        attempt=attempt,
        transition=True,
        job_id=job_id,
    )


# -- the child's output ---------------------------------------------------------------


async def test_the_child_runs_with_the_stage_input_and_its_output_is_the_stage_output(
    tk: TestKernel,
) -> None:
    run_id = await tk.create_run("parent", {"n": 1})
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"text": "got 4"}  # prep: 2; the child doubles it; finish reads it
    assert await _output(tk, run_id) == {"n": 4}
    [child] = await _children(tk, run_id)
    assert (child.workflow_id, child.status, child.input, child.output) == (
        "doubler",
        Status.COMPLETED,
        {"n": 2},
        {"n": 4},
    )
    assert (child.parent_run_id, child.parent_stage_id) == (run_id, "call")
    assert child.id == child_run_id(run_id, "call", 0, 1)


async def test_children_nest_and_the_grandparent_gets_the_output(tk: TestKernel) -> None:
    top = await tk.create_run("grandparent", {"n": 1})
    run = await tk.drive(top)
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"text": "got 4"}
    [middle] = await _children(tk, top)
    [leaf] = await _children(tk, middle.id)
    assert (middle.workflow_id, leaf.workflow_id) == ("parent", "doubler")
    assert (await tk.persistence.get_run(leaf.id)) is not None


async def test_a_waiting_parent_holds_no_job_and_no_slot(tk: TestKernel) -> None:
    run_id = await _waiting(tk)
    row = await _row(tk, run_id)
    [child] = await _children(tk, run_id)
    assert row.suspended_state is not None
    assert row.suspended_state["child_run_id"] == child.id
    assert row.next_poll_at is None and row.max_wait_until is None  # no poller looks at it
    assert child.status is Status.PENDING
    parent_jobs = await tk.jobs.jobs_of_run(run_id)
    assert parent_jobs and all(job.status is Status.COMPLETED for job in parent_jobs)
    assert await tk.work() == 0  # nothing is due for anybody until the child is claimed
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED


# -- failures and retries ---------------------------------------------------------------


async def test_a_failed_child_is_retried_as_a_new_child_run_after_the_backoff(
    tk: TestKernel, faults: Faults
) -> None:
    faults.failures = 1
    run_id = await _waiting(tk)
    await tk.tick()  # claims the child, whose stage fails for good (one attempt)
    await tk.work()
    [first] = await _children(tk, run_id)
    assert first.status is Status.FAILED
    row = await _row(tk, run_id)
    assert row.status is Status.PENDING and row.error is not None
    assert row.error.startswith("ChildFailed: child run ")
    [retry] = [job for job in await tk.jobs.jobs_of_run(run_id) if job.status is Status.PENDING]
    assert retry.run_at == tk.clock.now() + timedelta(seconds=5)
    assert await tk.work() == 0  # not before its time
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"text": "got 4"}
    first_again, second = await _children(tk, run_id)
    assert first_again.id == first.id and second.status is Status.COMPLETED
    assert second.id == child_run_id(run_id, "call", 0, 2)


async def test_a_child_failing_every_attempt_fails_the_parent(
    tk: TestKernel, faults: Faults
) -> None:
    faults.failures = 5
    run_id = await tk.create_run("parent", {"n": 1})
    run = await tk.drive(run_id)
    assert run.status is Status.FAILED
    assert run.error is not None and run.error["stage_id"] == "call"
    assert "ChildFailed" in run.error["message"] and "double broke" in run.error["message"]
    children = await _children(tk, run_id)
    assert [child.status for child in children] == [Status.FAILED, Status.FAILED]  # 2 attempts
    assert faults.calls["double"] == 2


async def test_a_child_workflow_nobody_serves_fails_the_stage_at_once(tk: TestKernel) -> None:
    run_id = await tk.create_run("orphan", {"n": 1})
    run = await tk.drive(run_id)
    assert run.status is Status.FAILED
    assert run.error is not None and "ChildWorkflowNotServed" in run.error["message"]
    assert await _children(tk, run_id) == []


async def test_runs_starting_each_other_fail_at_the_depth_limit(tk: TestKernel) -> None:
    top = await tk.create_run("ping", {"n": 1})
    run = await tk.drive(top, max_rounds=2000)
    assert run.status is Status.FAILED
    assert run.error is not None and "ChildDepthExceeded" in run.error["message"]
    everyone = [r for r in await tk.persistence.list_runs(limit=500)]
    assert len(everyone) == MAX_CHILD_DEPTH + 1  # one per level, never retried
    assert all(r.status is Status.FAILED for r in everyone)


# -- cancellation ------------------------------------------------------------------------


async def test_cancelling_a_parent_cancels_its_children_all_the_way_down(tk: TestKernel) -> None:
    top = await tk.create_run("grandparent", {"n": 1})
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", workflow_run_id=top))
    await tk.work()
    [middle] = await _children(tk, top)
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", workflow_run_id=middle.id))
    await tk.work()
    [leaf] = await _children(tk, middle.id)
    assert leaf.status is Status.PENDING
    cancelled = await tk.kernel.dispatch(RunCancel(workflow_run_id=top, reason="enough"))
    assert cancelled.cancelled
    for run_id in (top, middle.id, leaf.id):
        assert (await _run(tk, run_id)).status is Status.CANCELLED
    assert (await _row(tk, top, "again")).status is Status.CANCELLED
    assert await tk.work() == 0


async def test_cancelling_a_child_fails_its_parents_stage_without_a_retry(tk: TestKernel) -> None:
    run_id = await _waiting(tk)
    [child] = await _children(tk, run_id)
    await tk.kernel.dispatch(RunCancel(workflow_run_id=child.id, reason="not this one"))
    run = await tk.drive(run_id)
    assert run.status is Status.FAILED
    assert run.error is not None and "ChildCancelled" in run.error["message"]
    assert len(await _children(tk, run_id)) == 1  # attempts were left: a cancel is no failure


async def test_a_child_ending_as_its_parent_is_cancelled_gives_one_outcome(
    tk: TestKernel,
) -> None:
    run_id = await _waiting(tk)
    [child] = await _children(tk, run_id)
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", workflow_run_id=child.id))
    cancel = tk.kernel.dispatch(RunCancel(workflow_run_id=run_id, reason="race"))
    await asyncio.gather(cancel, tk.work())
    await tk.work()
    run, row = await _run(tk, run_id), await _row(tk, run_id)
    events = [e.event_type for e in await tk.persistence.outbox_of_run(run_id)]
    call_events = [
        e.payload.get("stage_id") == "call" and e.event_type
        for e in await tk.persistence.outbox_of_run(run_id)
    ]
    if row.status is Status.CANCELLED:  # the cancel first: the child's end told nobody
        assert run.status is Status.CANCELLED
        assert "stage:completed" not in call_events
    else:  # the child first: the stage completed, the run moved on, then was cancelled
        assert row.status is Status.COMPLETED
        assert call_events.count("stage:completed") == 1
        assert run.status in (Status.CANCELLED, Status.COMPLETED)
    assert events.count("workflow:cancelled") <= 1
    assert (await _run(tk, child.id)).status not in ACTIVE


# -- redelivery and fences ---------------------------------------------------------------


async def test_a_redelivered_job_finds_its_child_and_never_creates_a_second(
    tk: TestKernel,
) -> None:
    run_id = await _waiting(tk)
    [child] = await _children(tk, run_id)
    first = (await _row(tk, run_id)).attempt
    # The lease was reaped after the child was created (the worker died): delivered again.
    again = await tk.kernel.dispatch(_call(run_id, first + 1))
    assert again.outcome == "suspended" and not again.ghost
    row = await _row(tk, run_id)
    assert row.attempt == first + 1 and row.suspended_state is not None
    assert row.suspended_state["child_run_id"] == child.id
    assert [c.id for c in await _children(tk, run_id)] == [child.id]
    # A stale delivery (an older attempt) is refused by the start's fence: nothing written.
    stale = await tk.kernel.dispatch(_call(run_id, first))
    assert stale.ghost
    assert (await _row(tk, run_id)).attempt == first + 1
    assert (await tk.drive(run_id)).status is Status.COMPLETED
    assert len(await _children(tk, run_id)) == 1


async def test_concurrent_deliveries_create_one_child(tk: TestKernel) -> None:
    run_id = await tk.create_run("parent", {"n": 1})
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", workflow_run_id=run_id))
    await tk.work(max_jobs=1)  # prep; `call`'s job is queued
    results = await asyncio.gather(
        tk.kernel.dispatch(_call(run_id, 1)), tk.kernel.dispatch(_call(run_id, 2))
    )
    assert len(await _children(tk, run_id)) == 1
    assert sorted(r.outcome for r in results if not r.ghost) in (["suspended"], ["suspended"] * 2)


async def test_a_child_ending_while_a_redelivery_holds_the_stage_leaves_it_to_that_delivery(
    tk: TestKernel,
) -> None:
    run_id = await _waiting(tk)
    [child] = await _children(tk, run_id)
    row = await _row(tk, run_id)
    # A redelivery started the stage (its first phase) and has not looked at the child yet.
    held = await tk.persistence.update_stage(
        row.id, {"status": Status.RUNNING, "attempt": row.attempt + 1}
    )
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", workflow_run_id=child.id))
    await tk.work()
    assert (await _run(tk, child.id)).status is Status.COMPLETED
    now = await _row(tk, run_id)
    assert (now.status, now.attempt) == (Status.RUNNING, held.attempt)  # the delivery's still
    finished = await tk.kernel.dispatch(_call(run_id, held.attempt))
    assert finished.outcome == "completed" and finished.output == {"n": 4}
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED and run.output == {"text": "got 4"}


@pytest.mark.parametrize("tk", ["memory"], indirect=True)  # the stale read is staged there
async def test_the_parents_stage_is_settled_only_while_its_fence_holds(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's final transaction reads the parent's stage SUSPENDED waiting for it, but a
    redelivery started the stage since (a read racing a write, as PostgreSQL's READ
    COMMITTED allows): the write, fenced on the status and version read, lands nowhere."""
    assert isinstance(tk.persistence, MemoryPersistence)
    run_id = await _waiting(tk)
    [child] = await _children(tk, run_id)
    read = await _row(tk, run_id)
    held = await tk.persistence.update_stage(
        read.id, {"status": Status.RUNNING, "attempt": read.attempt + 1}
    )
    real = memory_store.get_stage

    async def stale(self: Any, of_run: str, stage_id: str) -> StageRecord | None:
        return (
            read if (of_run, stage_id) == (run_id, "call") else await real(self, of_run, stage_id)
        )

    monkeypatch.setattr(memory_store, "get_stage", stale)
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", workflow_run_id=child.id))
    await tk.work()
    monkeypatch.undo()
    assert (await _run(tk, child.id)).status is Status.COMPLETED
    now = await _row(tk, run_id)
    assert (now.status, now.attempt, now.version) == (Status.RUNNING, held.attempt, held.version)
