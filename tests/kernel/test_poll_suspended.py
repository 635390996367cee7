"""`stage.pollSuspended`: resume, wait, fail, time out, and cancellation races."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.databases import open_storage
from tests.kernel.conftest import Script, Words, build_workflows
from tests.kernel.helpers import event_types, run_of, stage_of, start, step
from wfc.cli import cli
from wfc.runtime import Failed, JobExecute, NotReady, Ready, RunCancel, StagePollSuspended, Suspend
from wfc.runtime.records import Status
from wfc.testing import FakeClock, TestKernel, make_test_kernel


async def poll(tk: TestKernel) -> tuple[int, int, int, list[str]]:
    r = await tk.kernel.dispatch(StagePollSuspended())
    return r.checked, r.resumed, r.failed, r.resumed_workflow_run_ids


async def suspended_run(tk: TestKernel) -> str:
    run_id = await start(tk, "batch")
    outcome = await step(tk)
    assert outcome.outcome == "suspended"
    return run_id


async def test_suspending_parks_the_stage_and_its_job(tk: TestKernel) -> None:
    run_id = await suspended_run(tk)
    row = await stage_of(tk, run_id, "submit")
    now = tk.clock.now()
    assert row.status is Status.SUSPENDED
    assert row.suspended_state == {"batch": "the quick brown fox", "polls": 0}
    assert (row.next_poll_at, row.poll_interval_ms) == (now + timedelta(seconds=30), 30_000)
    assert row.max_wait_until == now + timedelta(hours=1)
    assert (await tk.all_jobs())[0].status is Status.SUSPENDED
    assert (await event_types(tk, run_id))[-2:] == ["stage:suspended", "workflow:suspended"]
    assert (await run_of(tk, run_id)).status is Status.RUNNING


async def test_not_due_yet_is_not_checked(tk: TestKernel, script: Script) -> None:
    await suspended_run(tk)
    assert await poll(tk) == (0, 0, 0, [])
    assert script.calls["check"] == 0


async def test_not_ready_moves_the_next_poll_and_keeps_the_state(tk: TestKernel) -> None:
    run_id = await suspended_run(tk)
    tk.clock.advance(seconds=30)
    assert await poll(tk) == (1, 0, 0, [])
    row = await stage_of(tk, run_id, "submit")
    assert row.suspended_state == {"batch": "the quick brown fox", "polls": 1}
    assert row.next_poll_at == tk.clock.now() + timedelta(seconds=30)
    tk.clock.advance(seconds=30)
    assert await poll(tk) == (1, 1, 0, [run_id])
    row = await stage_of(tk, run_id, "submit")
    assert row.status is Status.COMPLETED and row.duration_ms == 60_000
    assert (await tk.all_jobs())[0].status is Status.COMPLETED
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED and run.output == {"count": 4}


async def test_not_ready_with_its_own_next_check(tk: TestKernel, script: Script) -> None:
    run_id = await suspended_run(tk)
    script.then("check", NotReady(next_check_in=timedelta(minutes=7)))
    tk.clock.advance(seconds=30)
    await poll(tk)
    row = await stage_of(tk, run_id, "submit")
    assert row.next_poll_at == tk.clock.now() + timedelta(minutes=7)


async def test_an_error_fails_the_stage_and_the_run(tk: TestKernel, script: Script) -> None:
    run_id = await suspended_run(tk)
    script.then("check", Failed(error="batch rejected"))
    tk.clock.advance(seconds=30)
    assert await poll(tk) == (1, 0, 1, [])
    row = await stage_of(tk, run_id, "submit")
    assert (row.status, row.error) == (Status.FAILED, "batch rejected")
    run = await run_of(tk, run_id)
    assert run.status is Status.FAILED and run.error is not None
    assert run.error["code"] == "STAGE_FAILED"
    assert (await event_types(tk, run_id))[-2:] == ["stage:failed", "workflow:failed"]
    assert (await tk.all_jobs())[0].status is Status.FAILED


async def test_an_exception_fails_the_stage_and_the_run(tk: TestKernel, script: Script) -> None:
    run_id = await suspended_run(tk)
    script.then("check", ConnectionError("provider down"))
    tk.clock.advance(seconds=30)
    await poll(tk)
    row = await stage_of(tk, run_id, "submit")
    assert row.error == "ConnectionError: provider down"
    assert (await run_of(tk, run_id)).status is Status.FAILED
    # Where the check raised is kept on the ERROR line of the stage, as for an execute.
    (line,) = [log for log in await tk.persistence.logs_of_run(run_id) if log.level == "ERROR"]
    assert line.stage_record_id == row.id and line.message == row.error
    where = line.fields["traceback"]
    assert (
        "Traceback (most recent call last)" in where and "ConnectionError: provider down" in where
    )


async def test_runs_show_prints_the_next_check_and_where_a_check_raised(
    script: Script, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"  # migrated as the CLI wants it
    clock = FakeClock()
    storage = open_storage(url, clock=clock)
    await storage.prepare()
    tk = make_test_kernel(*build_workflows(script), clock=clock, storage=storage)
    run_id = await suspended_run(tk)
    show = ["runs", "show", run_id, "--db", url]
    waiting = await asyncio.to_thread(CliRunner().invoke, cli, show)
    due = (await stage_of(tk, run_id, "submit")).next_poll_at
    assert due is not None
    assert f"next check {due.isoformat(sep=' ')[:23]}" in waiting.output, waiting.output
    shown = await asyncio.to_thread(CliRunner().invoke, cli, [*show, "--json"])
    assert json.loads(shown.output)["stages"][0]["next_poll_at"] == due.isoformat()
    script.then("check", ConnectionError("provider down"))
    tk.clock.advance(seconds=30)
    await poll(tk)
    failed = await asyncio.to_thread(CliRunner().invoke, cli, show)
    await storage.close()
    assert "submit raised:" in failed.output and "ConnectionError: provider down" in failed.output


async def test_past_max_wait_the_stage_times_out(tk: TestKernel, script: Script) -> None:
    run_id = await suspended_run(tk)
    script.then("check", NotReady())
    tk.clock.advance(hours=1)
    assert await poll(tk) == (1, 0, 1, [])
    run = await run_of(tk, run_id)
    assert run.error is not None and run.error["code"] == "SUSPEND_TIMEOUT"
    assert "exceeded max wait" in run.error["message"]


async def test_ready_after_the_deadline_still_completes(tk: TestKernel, script: Script) -> None:
    run_id = await suspended_run(tk)
    script.then("check", Ready(output=Words(words=["late"])))
    tk.clock.advance(hours=2)
    assert await poll(tk) == (1, 1, 0, [run_id])


async def test_an_invalid_ready_output_fails(tk: TestKernel, script: Script) -> None:
    run_id = await suspended_run(tk)
    script.then("check", Ready(output={"words": [1, 2]}))
    tk.clock.advance(seconds=30)
    await poll(tk)
    assert (await stage_of(tk, run_id, "submit")).error == (
        "Stage submit returned an invalid output: words.0: Input should be a valid string; "
        "words.1: Input should be a valid string"
    )


async def test_a_cancelled_run_cancels_its_suspended_stage(tk: TestKernel, script: Script) -> None:
    run_id = await suspended_run(tk)
    await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id))
    # run.cancel already cancelled the stage; a stale SUSPENDED row is cancelled by the poller.
    assert (await stage_of(tk, run_id, "submit")).status is Status.CANCELLED
    assert (await tk.all_jobs())[0].status is Status.CANCELLED
    assert script.calls["check"] == 0


async def test_cancel_during_check_completion_resumes_nothing(
    tk: TestKernel, script: Script
) -> None:
    run_id = await suspended_run(tk)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow_ready(ctx: Any) -> Any:
        entered.set()
        await release.wait()
        return Ready(output=Words(words=["x"]))

    script.then("check", lambda ctx: slow_ready(ctx))

    async def cancel_then_release() -> None:
        await entered.wait()
        await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id))
        release.set()

    tk.clock.advance(seconds=30)
    result, _ = await asyncio.gather(poll(tk), cancel_then_release())
    assert result == (1, 0, 0, [])
    assert (await stage_of(tk, run_id, "submit")).status is Status.CANCELLED
    assert "stage:completed" not in await event_types(tk, run_id)


async def test_execute_sees_resume_state_on_redelivery(tk: TestKernel, script: Script) -> None:
    seen: list[Any] = []

    def remember(ctx: Any) -> Any:
        seen.append(ctx.resume_state)
        return Suspend(state={"batch": "a b", "polls": 0})

    script.then("submit", remember, remember)
    run_id = await start(tk, "batch")
    await step(tk)
    # The same job delivered again (its lease was reaped before it was parked): a new
    # delivery, so a newer attempt.
    await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id="batch", stage_id="submit", attempt=2)
    )
    assert seen == [None, {"batch": "a b", "polls": 0}]
