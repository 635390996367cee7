"""A stage a worker hands itself starts from what the hand-off knew (`WarmStart`).

Its execution reads neither the run nor the earlier stages' outputs again,
sees those outputs exactly as stored whatever the stage before did to the
objects it read, and a later delivery of the same job reads everything fresh.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.kernel.conftest import Count, Script
from tests.kernel.helpers import DOC, run_of, start, step
from wfc.runtime.commands import RunCancel, RunClaimPending
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import JobOutcome, process_job
from wfc.runtime.records import Status
from wfc.testing import SlotTaker, TestKernel


@pytest.fixture
def reads(tk: TestKernel, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts of the pre-flight's run reads and of output blob reads."""
    counts: Counter[str] = Counter()
    deps = tk.kernel.deps

    def counting(name: str, target: Any) -> None:
        real = getattr(target, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return await real(*args, **kwargs)

        monkeypatch.setattr(target, name, counted)

    counting("run_with_stages", deps.persistence)
    counting("get", deps.blobs)
    return counts


async def run_handed(tk: TestKernel, worker: SlotTaker) -> JobOutcome:
    """Process the job `worker` was handed, handing it the next one in turn."""
    (job,) = worker.taken
    worker.taken = []
    with handing_off_to(worker):
        return await process_job(tk.kernel, job)


async def test_a_handed_stage_reads_neither_the_run_nor_earlier_outputs(
    tk: TestKernel, reads: Counter[str]
) -> None:
    run_id = await start(tk, "linear")
    worker = SlotTaker(1)
    with handing_off_to(worker):
        await step(tk)  # split, dequeued: reads the run; hands itself count
    assert reads == {"run_with_stages": 1}
    await run_handed(tk, worker)  # count
    await run_handed(tk, worker)  # report: needs split's and count's outputs
    assert reads == {"run_with_stages": 1}
    run = await run_of(tk, run_id)
    assert run.status is Status.COMPLETED
    assert run.output == {"summary": "4: the quick brown fox"}


async def test_a_handed_stage_sees_outputs_as_stored_whatever_the_stage_before_did(
    tk: TestKernel, script: Script
) -> None:
    def count_and_scribble(ctx: Any) -> Count:
        words = ctx.require("split")["words"]
        words.append("SCRIBBLE")  # a body may change what it reads; the record must not
        return Count(count=len(words) - 1)

    script.then("count", count_and_scribble)
    run_id = await start(tk, "linear")
    worker = SlotTaker(1)
    with handing_off_to(worker):
        await step(tk)
    await run_handed(tk, worker)
    await run_handed(tk, worker)
    run = await run_of(tk, run_id)
    assert run.output == {"summary": "4: the quick brown fox"}


async def test_a_later_delivery_of_a_handed_job_reads_everything_again(
    tk: TestKernel, reads: Counter[str]
) -> None:
    await start(tk, "linear")
    worker = SlotTaker(1)
    with handing_off_to(worker):
        await step(tk)
    await tk.jobs.release(worker.taken[0].id)  # its worker stopped before starting it
    assert (await step(tk)).outcome == "completed"  # count, attempt 2
    assert reads == {"run_with_stages": 2, "get": 1}


async def test_a_run_cancelled_after_the_hand_off_discards_the_handed_stage(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "linear")
    worker = SlotTaker(1)
    with handing_off_to(worker):
        await step(tk)
    assert (await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id))).cancelled
    outcome = await run_handed(tk, worker)
    assert outcome.outcome == "failed" and outcome.error is not None
    assert "CANCELLED" in outcome.error
    assert (await run_of(tk, run_id)).status is Status.CANCELLED
    assert script.calls["report"] == 0
    assert all(j.stage_id != "report" for j in await tk.jobs.jobs_of_run(run_id))


async def test_a_group_handed_whole_reads_only_the_outputs_its_hand_off_did_not_hold(
    tk: TestKernel, reads: Counter[str]
) -> None:
    """Both siblings start warm; the join, handed by whichever sibling finished last, has
    that sibling's output and split's in hand and reads only the other sibling's."""
    run_id = await start(tk, "fanout")
    worker = SlotTaker(2)
    with handing_off_to(worker):
        await step(tk)  # split; hands itself [upper, length]
    upper, length = worker.taken
    worker.taken = []
    with handing_off_to(worker):
        await process_job(tk.kernel, upper)
        await process_job(tk.kernel, length)
    await run_handed(tk, worker)  # join
    run = await run_of(tk, run_id)
    assert run.output == {"summary": "THE QUICK BROWN FOX (16)"}
    assert reads == {"run_with_stages": 1, "get": 1}


async def claimed_and_handed(tk: TestKernel) -> tuple[str, SlotTaker]:
    """A `linear` run claimed by a one-slot worker, which hands itself the first stage."""
    run_id = await tk.create_run("linear", DOC)
    worker = SlotTaker(1)
    with handing_off_to(worker):
        await tk.kernel.dispatch(RunClaimPending(worker_id="w1"))
    return run_id, worker


async def test_a_first_stage_handed_by_the_claim_starts_warm(
    tk: TestKernel, reads: Counter[str]
) -> None:
    """The claim knows the run it started: a worker that hands itself the first stage
    runs the whole run without reading it back."""
    run_id, worker = await claimed_and_handed(tk)
    for _ in range(3):
        assert (await run_handed(tk, worker)).outcome == "completed"
    assert reads == {}
    assert (await run_of(tk, run_id)).output == {"summary": "4: the quick brown fox"}


@pytest.fixture
def stage_reads(tk: TestKernel, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The run ids whose stages were read (`stages_of_run`), in or out of a transaction."""
    seen: list[str] = []
    owner = next(c for c in type(tk.persistence).__mro__ if "stages_of_run" in vars(c))
    real = owner.stages_of_run  # type: ignore[attr-defined]

    async def counted(self: Any, run_id: str) -> Any:
        seen.append(run_id)
        return await real(self, run_id)

    monkeypatch.setattr(owner, "stages_of_run", counted)
    return seen


async def test_a_stage_alone_in_its_group_decides_from_the_stages_it_started_with(
    tk: TestKernel, stage_reads: list[str]
) -> None:
    """No transition ran between the hand-off and the outcome (the run's version tells), so
    what the stage started with is still true: the outcome reads no stages again."""
    run_id, worker = await claimed_and_handed(tk)
    for _ in range(3):
        assert (await run_handed(tk, worker)).outcome == "completed"
    assert stage_reads == []
    run = await run_of(tk, run_id)
    assert run.output == {"summary": "4: the quick brown fox"}
    assert [s.status for s in await tk.persistence.stages_of_run(run_id)] == [Status.COMPLETED] * 3


async def test_a_stage_reads_the_stages_again_when_the_run_changed_meanwhile(
    tk: TestKernel, stage_reads: list[str]
) -> None:
    """A write to the run between the hand-off and the outcome (here a bare version bump,
    as any transition makes) means the stages may have changed: they are read."""
    run_id, worker = await claimed_and_handed(tk)
    await run_handed(tk, worker)  # split
    await tk.persistence.update_run(run_id, {})
    await run_handed(tk, worker)  # count
    assert stage_reads == [run_id]
    await run_handed(tk, worker)  # report: nothing changed since count's outcome
    assert stage_reads == [run_id]
    assert (await run_of(tk, run_id)).status is Status.COMPLETED


async def test_only_the_last_sibling_to_finish_reads_the_stages_at_its_outcome(
    tk: TestKernel, stage_reads: list[str]
) -> None:
    """A sibling's start or failure changes its row without a transition, so parallel
    stages cannot trust what they started with: each counts the run's active stages after
    the run's lock, and only the last one to finish (none left active) reads the group's
    rows to move the run on. A sibling before it reads no rows, whatever the width."""
    run_id = await start(tk, "fanout")
    worker = SlotTaker(2)
    with handing_off_to(worker):
        await step(tk)  # split: it read its stages in its pre-flight, and has no siblings
    assert stage_reads == []
    upper, length = worker.taken
    worker.taken = []
    with handing_off_to(worker):
        await process_job(tk.kernel, upper)
        await process_job(tk.kernel, length)
    assert stage_reads == [run_id]
    await run_handed(tk, worker)  # join
    assert (await run_of(tk, run_id)).output == {"summary": "THE QUICK BROWN FOX (16)"}
