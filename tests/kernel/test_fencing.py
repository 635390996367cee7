"""A committed outcome is final: late deliveries, racing pollers and poison outcomes.

Each test here failed before outcomes were fenced (the issue "Exactly once"):
two pollers both committed one suspended stage, a worker paused past its lease
overwrote (or reopened) a stage another worker had committed, an output no
database can store was retried forever, and a delivery past `max_attempts`
ran the stage again.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.kernel.conftest import Script, Words
from tests.kernel.helpers import event_types, run_of, stage_of, start, step
from wfc.errors import InvalidRunInputError
from wfc.runtime import (
    Failed,
    JobExecute,
    LeaseReapStale,
    Ready,
    RunCancel,
    RunTransition,
    StagePollSuspended,
    Suspend,
)
from wfc.runtime.hosts import JobOutcome, process_job
from wfc.runtime.records import Status
from wfc.testing import TestKernel


async def _completions(tk: TestKernel, run_id: str, stage_id: str) -> int:
    events = await tk.persistence.outbox_of_run(run_id)
    return sum(
        e.event_type == "stage:completed" and e.payload.get("stage_id") == stage_id for e in events
    )


async def _suspended_and_due(tk: TestKernel) -> str:
    run_id = await start(tk, "batch")
    assert (await step(tk)).outcome == "suspended"
    tk.clock.advance(seconds=30)
    return run_id


async def test_two_pollers_check_and_commit_a_due_stage_once(
    tk: TestKernel, script: Script
) -> None:
    async def slow_ready(ctx: Any) -> Any:
        await asyncio.sleep(0.05)  # the other poller runs meanwhile
        return Ready(output=Words(words=["done"]))

    script.then("check", slow_ready, Failed(error="a second check must not happen"))
    run_id = await _suspended_and_due(tk)
    results = await asyncio.gather(*(tk.kernel.dispatch(StagePollSuspended()) for _ in range(2)))
    assert sorted(r.checked for r in results) == [0, 1]
    assert script.calls["check"] == 1
    assert await _completions(tk, run_id, "submit") == 1
    assert (await stage_of(tk, run_id, "submit")).status is Status.COMPLETED
    run = await tk.drive(run_id)
    assert (run.status, run.output) == (Status.COMPLETED, {"count": 1})


async def test_a_poller_whose_claim_ran_out_commits_nothing(tk: TestKernel, script: Script) -> None:
    gate = asyncio.Event()

    async def late_ready(ctx: Any) -> Any:
        await gate.wait()
        return Ready(output=Words(words=["late", "answer"]))

    script.then("check", late_ready, Ready(output=Words(words=["on", "time", "!"])))
    run_id = await _suspended_and_due(tk)
    late = asyncio.create_task(tk.kernel.dispatch(StagePollSuspended(claim_ms=60_000)))
    while script.calls["check"] == 0:
        await asyncio.sleep(0.01)
    tk.clock.advance(seconds=61)  # the first claim ran out: another poller may take it
    second = await tk.kernel.dispatch(StagePollSuspended())
    assert (second.checked, second.resumed) == (1, 1)
    gate.set()
    first = await late
    assert (first.checked, first.resumed) == (1, 0)
    assert await _completions(tk, run_id, "submit") == 1
    run = await tk.drive(run_id)
    assert (run.status, run.output) == (Status.COMPLETED, {"count": 3})


async def test_a_resumed_stage_s_run_moves_on_in_the_poll_s_own_commit(tk: TestKernel) -> None:
    run_id = await _suspended_and_due(tk)
    await tk.kernel.dispatch(StagePollSuspended())  # not ready yet
    tk.clock.advance(seconds=30)
    result = await tk.kernel.dispatch(StagePollSuspended())
    assert result.resumed == 1
    # No RunTransition was dispatched: the next group was opened with the completion.
    count = await stage_of(tk, run_id, "count")
    assert count.status is Status.PENDING
    assert [j.stage_id for j in await tk.all_jobs() if j.status is Status.PENDING] == ["count"]
    assert (await tk.kernel.dispatch(RunTransition(workflow_run_id=run_id))).action == "noop"


async def _reap_and_redeliver(tk: TestKernel) -> Any:
    """Take the leased job back as the reaper does for a silent worker, and lease it again."""
    tk.clock.advance(timedelta(minutes=10))
    await tk.kernel.dispatch(LeaseReapStale(stale_threshold_ms=60_000))
    (again,) = await tk.jobs.dequeue()
    return again


async def _paused_past_its_lease(
    tk: TestKernel, script: Script, late_attempt: Any
) -> tuple[str, JobOutcome]:
    """Stage `split`'s first delivery runs `late_attempt` while frozen (a GC pause, SIGSTOP,
    a blocked loop); its lease is reaped and a second delivery commits the stage; then the
    first one wakes up and finishes. The run, and how the late delivery ended."""
    gate = threading.Event()

    def frozen(ctx: Any) -> Any:
        gate.wait(10)
        return late_attempt(ctx)

    script.then("split", frozen)
    run_id = await start(tk, "linear")
    (first,) = await tk.jobs.dequeue()
    late = asyncio.create_task(process_job(tk.kernel, first))
    while script.calls["split"] == 0:
        await asyncio.sleep(0.01)
    second = await _reap_and_redeliver(tk)
    assert (first.attempt, second.attempt) == (1, 2)
    assert (await process_job(tk.kernel, second)).outcome == "completed"
    gate.set()
    return run_id, await late


async def test_a_worker_paused_past_its_lease_cannot_overwrite_the_committed_stage(
    tk: TestKernel, script: Script
) -> None:
    run_id, outcome = await _paused_past_its_lease(tk, script, lambda ctx: Words(words=["late"]))
    assert outcome.outcome == "failed" and not outcome.retried
    row = await stage_of(tk, run_id, "split")
    assert (row.status, row.attempt) == (Status.COMPLETED, 2)
    assert await _completions(tk, run_id, "split") == 1
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED
    assert run.output["summary"] == "4: the quick brown fox"  # the committed output, not "late"
    (split_job,) = [j for j in await tk.all_jobs() if j.stage_id == "split"]
    assert (split_job.status, split_job.attempt) == (Status.COMPLETED, 2)


async def test_a_late_failure_does_not_reopen_the_committed_stage(
    tk: TestKernel, script: Script
) -> None:
    def raises(ctx: Any) -> Words:
        raise RuntimeError("the late attempt fails")

    run_id, _ = await _paused_past_its_lease(tk, script, raises)
    assert (await stage_of(tk, run_id, "split")).status is Status.COMPLETED
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED
    assert script.calls["split"] == 2  # never a third time
    assert "stage:failed" not in await event_types(tk, run_id)


async def test_an_output_no_database_can_store_fails_the_attempt_for_good(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", Words(words=["nul\x00byte"]))
    run_id = await start(tk, "linear")
    outcome = await step(tk)
    assert outcome.outcome == "failed" and not outcome.retried
    row = await stage_of(tk, run_id, "split")
    assert row.status is Status.FAILED
    assert row.error is not None and "UnstorableOutput" in row.error and "U+0000" in row.error
    assert (await run_of(tk, run_id)).status is Status.FAILED
    assert script.calls["split"] == 1


async def test_an_error_holding_a_nul_is_stored_escaped(tk: TestKernel, script: Script) -> None:
    script.then("split", *[ValueError("bad\x00value\ud800")] * 3)
    run_id = await start(tk, "linear")
    run = await tk.drive(run_id)
    assert run.status is Status.FAILED
    row = await stage_of(tk, run_id, "split")
    assert row.error == "ValueError: bad\\u0000value\\ud800"
    logs = [log.message for log in await tk.persistence.logs_of_run(run_id)]
    assert "ValueError: bad\\u0000value\\ud800" in logs


async def test_a_delivery_past_max_attempts_fails_the_stage_without_running_it(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "linear")
    (job,) = await tk.jobs.dequeue()
    for _ in range(3):  # three workers died with it: each lease is reaped
        job = await _reap_and_redeliver(tk)
    assert job.attempt == 4
    outcome = await process_job(tk.kernel, job)
    assert outcome.outcome == "failed" and not outcome.retried
    assert script.calls["split"] == 0
    row = await stage_of(tk, run_id, "split")
    assert row.status is Status.FAILED and "AttemptsExhausted" in (row.error or "")
    assert (await run_of(tk, run_id)).status is Status.FAILED


async def test_a_stale_delivery_does_not_restart_a_stage_a_newer_one_started(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "linear")
    await tk.jobs.dequeue()
    await _reap_and_redeliver(tk)
    newer = await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split", attempt=2)
    )
    assert newer.outcome == "completed"
    stale = await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split", attempt=1)
    )
    assert stale.outcome == "completed" and not stale.ghost  # answered from the committed row
    assert script.calls["split"] == 1
    assert await _completions(tk, run_id, "split") == 1


async def test_a_cancel_that_read_the_run_before_it_completed_leaves_it_completed(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await start(tk, "linear")
    as_read = await run_of(tk, run_id)  # what a cancel read just before the last commit
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED
    reads = [as_read]
    store_type = type(tk.persistence)
    real_get_run = store_type.get_run

    async def first_read_is_stale(self: Any, run_id: str) -> Any:
        return reads.pop() if reads else await real_get_run(self, run_id)

    monkeypatch.setattr(store_type, "get_run", first_read_is_stale)
    async with tk.persistence.transaction() as tx:
        monkeypatch.setattr(type(tx), "get_run", first_read_is_stale)
    result = await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id))
    assert result.cancelled is False
    monkeypatch.undo()
    assert (await run_of(tk, run_id)).status is Status.COMPLETED
    assert "workflow:cancelled" not in await event_types(tk, run_id)


async def test_a_suspend_state_no_database_can_store_fails_the_stage(
    tk: TestKernel, script: Script
) -> None:
    script.then("submit", Suspend(state={"score": float("nan")}))
    run_id = await start(tk, "batch")
    outcome = await step(tk)
    assert outcome.outcome == "failed" and not outcome.retried
    row = await stage_of(tk, run_id, "submit")
    assert row.status is Status.FAILED
    assert row.error is not None and "$.score: nan (JSON has no such number)" in row.error
    assert (await run_of(tk, run_id)).status is Status.FAILED


async def test_a_run_input_no_database_can_store_is_refused_before_anything_is_written(
    tk: TestKernel,
) -> None:
    with pytest.raises(InvalidRunInputError) as refused:
        await tk.create_run("linear", {"text": "nul\x00here"})
    assert refused.value.problems == ["input.text: U+0000, which no database can store"]
    assert await tk.persistence.list_runs() == []
