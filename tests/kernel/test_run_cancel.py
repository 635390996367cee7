"""`run.cancel`: the cascade to stages and jobs, and what it leaves alone."""

from __future__ import annotations

from tests.kernel.helpers import DOC, event_types, run_of, start, step
from wfc.runtime import RunCancel
from wfc.runtime.hosts import process_job
from wfc.runtime.records import Status
from wfc.testing import TestKernel


async def cancel(tk: TestKernel, run_id: str, reason: str | None = None) -> bool:
    return (await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id, reason=reason))).cancelled


async def test_cancel_a_pending_run(tk: TestKernel) -> None:
    run_id = await tk.create_run("linear", DOC)
    assert await cancel(tk, run_id, "changed my mind")
    run = await run_of(tk, run_id)
    assert run.status is Status.CANCELLED and run.completed_at == tk.clock.now()
    cancelled = [e for e in (await tk.all_outbox()) if e.event_type == "workflow:cancelled"]
    assert cancelled[0].payload["reason"] == "changed my mind"


async def test_cancel_cascades_to_open_stages_and_queued_jobs(tk: TestKernel) -> None:
    run_id = await start(tk, "fanout")
    await step(tk)  # split completes, upper and length queued
    assert await cancel(tk, run_id)
    rows = {r.stage_id: r.status for r in await tk.persistence.stages_of_run(run_id)}
    assert rows == {
        "split": Status.COMPLETED,
        "upper": Status.CANCELLED,
        "length": Status.CANCELLED,
    }
    jobs = {j.stage_id: j.status for j in (await tk.all_jobs())}
    assert jobs == {
        "split": Status.COMPLETED,
        "upper": Status.CANCELLED,
        "length": Status.CANCELLED,
    }
    assert await tk.jobs.dequeue() == []


async def test_a_running_job_is_left_to_find_out_itself(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    leased = await tk.jobs.dequeue()
    assert await cancel(tk, run_id)
    assert (await tk.job(leased[0].id)).status is Status.RUNNING
    outcome = await process_job(tk.kernel, leased[0])
    assert outcome.outcome == "failed" and not outcome.retried
    assert (await tk.job(leased[0].id)).status is Status.FAILED
    assert (await run_of(tk, run_id)).status is Status.CANCELLED


async def test_cancelling_a_finished_or_missing_run_does_nothing(tk: TestKernel) -> None:
    assert not await cancel(tk, "nope")
    run_id = await start(tk, "linear")
    await tk.drive(run_id)
    assert not await cancel(tk, run_id)
    assert "workflow:cancelled" not in await event_types(tk, run_id)


async def test_a_run_end_listener_that_raises_changes_nothing_the_cancel_did(
    tk: TestKernel,
) -> None:
    """`Deps.run_end_listeners` (a host's waiters) are told after the commit and after
    its promised after-commit work: one that raises is logged, the cancel still answers,
    its queued jobs are still cancelled, and the next listener is still told."""
    run_id = await start(tk, "fanout")
    await step(tk)  # split completes, upper and length queued
    told: list[str] = []

    def broken(ended: str) -> None:
        raise RuntimeError("a listener broke")

    tk.kernel.deps.run_end_listeners.extend([broken, told.append])
    try:
        assert await cancel(tk, run_id)
    finally:
        tk.kernel.deps.run_end_listeners.clear()
    assert told == [run_id]
    assert (await run_of(tk, run_id)).status is Status.CANCELLED
    assert {j.stage_id: j.status for j in await tk.all_jobs()} == {
        "split": Status.COMPLETED,
        "upper": Status.CANCELLED,
        "length": Status.CANCELLED,
    }
    assert await tk.jobs.dequeue() == []
