"""`job.execute` with `transition`: a completed stage and its run's transition, one commit.

The transaction locks the run's row before it reads the stages, so two
parallel siblings finishing at the same moment cannot each see the other
still RUNNING and both leave the run where it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.kernel.conftest import Count, Script, Words
from tests.kernel.helpers import event_types, execute, run_of, stage_of, start, step
from wfc.runtime.commands import JobExecuteResult, RunTransition
from wfc.runtime.hosts import process_job
from wfc.runtime.records import Status
from wfc.testing import TestKernel


async def test_a_completed_stage_advances_its_run_in_the_same_transaction(
    tk: TestKernel,
) -> None:
    run_id = await start(tk, "linear")
    (job,) = await tk.jobs.dequeue()
    result = await tk.kernel.dispatch(execute(job))
    assert result.transition is not None
    assert (result.transition.action, result.transition.next_group) == ("advanced", 2)
    assert (await stage_of(tk, run_id, "count")).status is Status.PENDING
    assert [j.stage_id for j in await tk.jobs.jobs_of_run(run_id)] == ["split", "count"]
    assert (await event_types(tk, run_id))[-1] == "stage:completed"


async def test_without_transition_the_run_waits_for_its_own_command(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    (job,) = await tk.jobs.dequeue()
    result = await tk.kernel.dispatch(execute(job, transition=False))
    assert result.outcome == "completed" and result.transition is None
    assert [j.stage_id for j in await tk.jobs.jobs_of_run(run_id)] == ["split"]


async def test_the_last_stage_completes_the_run_with_its_output(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    await step(tk)
    await step(tk)
    (job,) = await tk.jobs.dequeue()
    result = await tk.kernel.dispatch(execute(job))
    assert result.transition is not None and result.transition.action == "completed"
    run = await run_of(tk, run_id)
    assert run.status is Status.COMPLETED
    assert run.output == {"summary": "4: the quick brown fox"}
    assert (await event_types(tk, run_id))[-2:] == ["stage:completed", "workflow:completed"]


async def together(barrier: asyncio.Barrier, output: Any) -> Any:
    """`output`, once every party of `barrier` has arrived."""
    await barrier.wait()
    return output


async def test_siblings_finishing_together_advance_the_run_exactly_once(
    tk: TestKernel, script: Script
) -> None:
    """Both siblings' bodies end at the same moment, so their outcome transactions overlap."""
    for n in range(4):
        run_id = await start(tk, "fanout", {"text": f"run {n}"})
        await step(tk)  # split; opens [upper, length]
        barrier = asyncio.Barrier(2)
        script.then("upper", lambda ctx, b=barrier: together(b, Words(words=["RUN"])))
        script.then("length", lambda ctx, b=barrier: together(b, Count(count=3)))
        siblings = await tk.jobs.dequeue(2)
        results: list[JobExecuteResult] = await asyncio.gather(
            *(tk.kernel.dispatch(execute(job)) for job in siblings)
        )
        actions = sorted(r.transition.action for r in results if r.transition is not None)
        assert actions == ["advanced", "noop"], f"run {n}: {actions}"
        queued = [j.stage_id for j in await tk.jobs.jobs_of_run(run_id)]
        assert queued.count("join") == 1
        await step(tk)  # join
        assert (await run_of(tk, run_id)).status is Status.COMPLETED


async def test_a_failed_sibling_leaves_the_decision_to_a_transition_that_reads_the_jobs(
    tk: TestKernel, script: Script
) -> None:
    """Whether a failed sibling is final depends on its jobs, which the outcome's transaction
    does not read: the result says no transition ran, and the caller's own one fails the run."""
    run_id = await start(tk, "fanout")
    await step(tk)
    script.then("length", *[RuntimeError("fatal")] * 3)
    upper, length = sorted(await tk.jobs.dequeue(2), key=lambda j: j.stage_id, reverse=True)
    assert (upper.stage_id, length.stage_id) == ("upper", "length")
    assert (await process_job(tk.kernel, length)).retried
    for _ in range(2):
        tk.clock.advance(seconds=10)
        assert (await step(tk)).outcome == "failed"
    assert (await stage_of(tk, run_id, "length")).status is Status.FAILED
    result = await tk.kernel.dispatch(execute(upper))
    assert result.outcome == "completed" and result.transition is None
    assert (await run_of(tk, run_id)).status is Status.RUNNING
    transition = await tk.kernel.dispatch(RunTransition(workflow_run_id=run_id))
    assert transition.action == "failed"
    assert (await run_of(tk, run_id)).status is Status.FAILED
