"""`run.reapStuck`: runs that lost their way are repaired, and failed only when they cannot be."""

from __future__ import annotations

from datetime import timedelta

from tests.kernel.helpers import DOC, run_of, stage_of, start, step
from wfc.runtime import JobExecute, RunReapStuck
from wfc.runtime.records import Status
from wfc.testing import TestKernel

FIVE_MIN = 5 * 60_000


async def reap_stuck(tk: TestKernel) -> tuple[int, int, int]:
    r = await tk.kernel.dispatch(RunReapStuck(stuck_threshold_ms=3 * FIVE_MIN))
    return r.recovered, r.transitioned, r.failed


async def test_a_run_that_lost_its_jobs_is_requeued(tk: TestKernel) -> None:
    run_id = await start(tk, "fanout")
    await step(tk)  # split done; upper and length queued
    for job in await tk.all_jobs():  # the queued jobs are lost (settled without running)
        if job.status is Status.PENDING:
            await tk.jobs.complete(job.id)
    tk.clock.advance(minutes=16)
    assert await reap_stuck(tk) == (1, 0, 0)
    requeued = [j.stage_id for j in await tk.all_jobs() if j.status is Status.PENDING]
    assert sorted(requeued) == ["length", "upper"]
    # Recovery counts as activity: the next sweep leaves the run alone.
    assert await reap_stuck(tk) == (0, 0, 0)
    assert (await tk.drive(run_id)).status is Status.COMPLETED


async def test_a_run_whose_stages_all_finished_is_transitioned(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    leased = await tk.jobs.dequeue()
    await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split")
    )
    await tk.jobs.complete(leased[0].id)  # settled, but the transition was lost
    tk.clock.advance(minutes=16)
    assert await reap_stuck(tk) == (0, 1, 0)
    assert (await stage_of(tk, run_id, "count")).status is Status.PENDING


async def test_a_run_whose_stage_used_up_its_attempts_is_failed(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    for _ in range(3):  # every delivery crashed the worker infrastructure
        leased = await tk.jobs.dequeue()
        await tk.jobs.fail(leased[0].id, "worker crashed", retry_at=tk.clock.now())
    await tk.persistence.update_stage(
        (await stage_of(tk, run_id, "split")).id, {"status": Status.RUNNING}
    )
    tk.clock.advance(minutes=16)
    assert await reap_stuck(tk) == (0, 0, 1)
    run = await run_of(tk, run_id)
    assert run.status is Status.FAILED and run.error is not None
    assert run.error["code"] == "STUCK_RUN_REAPED"
    assert run.error["stage_statuses"] == [{"stage_id": "split", "status": "RUNNING"}]


async def test_busy_or_suspended_runs_are_not_stuck(tk: TestKernel) -> None:
    busy = await start(tk, "linear")
    await tk.jobs.dequeue()  # a long stage, its worker alive
    tk.clock.advance(hours=2)
    waiting = await start(tk, "batch")
    await step(tk)  # suspended
    tk.clock.advance(hours=2)
    assert await reap_stuck(tk) == (0, 0, 0)
    assert (await run_of(tk, busy)).status is Status.RUNNING
    assert (await run_of(tk, waiting)).status is Status.RUNNING


async def test_pending_runs_are_never_stuck(tk: TestKernel) -> None:
    run_id = await tk.create_run("linear", DOC)
    tk.clock.advance(timedelta(days=1))
    assert await reap_stuck(tk) == (0, 0, 0)
    assert (await run_of(tk, run_id)).status is Status.PENDING
