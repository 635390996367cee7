"""`lease.reapStale`: a worker that vanished mid-stage loses nothing."""

from __future__ import annotations

from tests.kernel.conftest import Script
from tests.kernel.helpers import start, step
from wfc.runtime import JobExecute, LeaseReapStale, RunReapStuck
from wfc.runtime.records import Status
from wfc.testing import TestKernel

FIVE_MIN = 5 * 60_000


async def reap_leases(tk: TestKernel) -> int:
    return (await tk.kernel.dispatch(LeaseReapStale(stale_threshold_ms=FIVE_MIN))).released


async def reap_stuck(tk: TestKernel) -> tuple[int, int, int]:
    r = await tk.kernel.dispatch(RunReapStuck(stuck_threshold_ms=3 * FIVE_MIN))
    return r.recovered, r.transitioned, r.failed


async def test_a_stale_lease_is_released_and_the_stage_runs_again(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "linear")
    leased = await tk.jobs.dequeue()  # the worker dies here
    tk.clock.advance(minutes=5)
    assert await reap_leases(tk) == 0  # not strictly older than the threshold yet
    tk.clock.advance(seconds=1)
    assert await reap_leases(tk) == 1
    job = await tk.job(leased[0].id)
    assert (job.status, job.worker_id, job.attempt) == (Status.PENDING, None, 1)
    assert (await step(tk)).outcome == "completed"
    assert (await tk.job(leased[0].id)).attempt == 2
    assert (await tk.drive(run_id)).status is Status.COMPLETED
    assert script.calls["split"] == 1


async def test_a_heartbeat_keeps_a_live_lease(tk: TestKernel) -> None:
    await start(tk, "linear")
    leased = await tk.jobs.dequeue()
    tk.clock.advance(minutes=4)
    await tk.jobs.touch(leased[0].id)
    tk.clock.advance(minutes=4)
    assert await reap_leases(tk) == 0


async def test_a_worker_that_died_after_completing_does_not_rerun_the_stage(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "linear")
    leased = await tk.jobs.dequeue()
    # The stage completed, then the worker died before settling the job or transitioning.
    await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split", attempt=1)
    )
    tk.clock.advance(minutes=6)
    await reap_leases(tk)
    assert (await tk.job(leased[0].id)).status is Status.PENDING
    assert (await tk.drive(run_id)).status is Status.COMPLETED
    assert script.calls["split"] == 1
