"""`job.execute`: the three phases, guards, retries, validation, timeouts and threads."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.kernel.conftest import Count, Script, Words
from tests.kernel.helpers import DOC, event_types, run_of, stage_of, start, step
from wfc.errors import (
    NonRetryableError,
    RecordNotFoundError,
    RetryStage,
    StageNotFoundError,
    WorkflowNotFoundError,
)
from wfc.plan import RetryPolicy
from wfc.runtime import (
    JobExecute,
    RunCancel,
    Suspend,
    WorkflowBuilder,
    define_stage,
)
from wfc.runtime.records import Status
from wfc.testing import TestKernel, make_test_kernel


async def test_a_stage_runs_and_its_output_is_stored_as_a_blob(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    outcome = await step(tk)
    assert outcome.outcome == "completed"
    row = await stage_of(tk, run_id, "split")
    assert row.status is Status.COMPLETED and row.attempt == 1
    assert row.output_ref == f"runs/linear/{run_id}/split/output.json"
    assert await tk.blobs.get(row.output_ref) == b'{"words":["the","quick","brown","fox"]}'
    assert await event_types(tk, run_id) == [
        "workflow:created",
        "workflow:started",
        "stage:started",
        "stage:completed",
    ]
    # The host transitioned the run: the next group is queued.
    assert (await stage_of(tk, run_id, "count")).status is Status.PENDING


async def test_direct_dispatch_returns_the_output(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    result = await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split")
    )
    assert (result.outcome, result.output) == (
        "completed",
        {"words": ["the", "quick", "brown", "fox"]},
    )


async def test_a_pending_run_makes_the_job_a_ghost(tk: TestKernel) -> None:
    run_id = await tk.create_run("linear", DOC)
    result = await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split")
    )
    assert result.ghost and result.outcome == "failed" and not result.retryable
    assert result.error == f"Run {run_id} is PENDING before execution — result discarded"
    assert await tk.persistence.stages_of_run(run_id) == []


async def test_a_completed_stage_is_never_run_twice(tk: TestKernel, script: Script) -> None:
    run_id = await start(tk, "linear")
    cmd = JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split")
    first = await tk.kernel.dispatch(cmd)
    again = await tk.kernel.dispatch(cmd)
    assert again == first and script.calls["split"] == 1
    assert (await event_types(tk, run_id)).count("stage:started") == 1


async def test_lookups_that_cannot_succeed_raise(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    with pytest.raises(WorkflowNotFoundError):
        await tk.kernel.dispatch(
            JobExecute(workflow_run_id=run_id, workflow_id="x", stage_id="split")
        )
    with pytest.raises(StageNotFoundError, match="Stage nope not found in workflow linear"):
        await tk.kernel.dispatch(
            JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="nope")
        )
    with pytest.raises(RecordNotFoundError, match="WorkflowRun r0 not found"):
        await tk.kernel.dispatch(
            JobExecute(workflow_run_id="r0", workflow_id="linear", stage_id="split")
        )


async def test_a_failed_attempt_is_retried_with_backoff_then_succeeds(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", RuntimeError("flaky"), ValueError("still flaky"))
    run_id = await start(tk, "linear")
    first = await step(tk)
    assert first == type(first)(outcome="failed", error="RuntimeError: flaky", retried=True)
    row = await stage_of(tk, run_id, "split")
    # A stage waiting for its retry stays PENDING, so its group stays open.
    assert row.status is Status.PENDING and row.error == "RuntimeError: flaky"
    job = (await tk.all_jobs())[0]
    assert job.status is Status.PENDING and job.run_at == tk.clock.now() + timedelta(seconds=1)
    assert await tk.jobs.dequeue() == []  # not due yet
    tk.clock.advance(seconds=1)
    assert (await step(tk)).error == "ValueError: still flaky"
    assert (await tk.all_jobs())[0].run_at == tk.clock.now() + timedelta(seconds=2)
    tk.clock.advance(seconds=2)
    assert (await step(tk)).outcome == "completed"
    row = await stage_of(tk, run_id, "split")
    assert row.status is Status.COMPLETED and row.attempt == 3 and row.error is None
    failures = [e for e in (await tk.all_outbox()) if e.event_type == "stage:failed"]
    assert [f.payload["retry_at"] is not None for f in failures] == [True, True]


async def test_exhausted_retries_fail_the_stage_and_the_run(tk: TestKernel, script: Script) -> None:
    script.then("split", *[RuntimeError(f"boom {i}") for i in range(3)])
    run_id = await start(tk, "linear")
    for _ in range(3):
        await step(tk)
        tk.clock.advance(seconds=10)
    row = await stage_of(tk, run_id, "split")
    assert row.status is Status.FAILED and row.error == "RuntimeError: boom 2"
    run = await run_of(tk, run_id)
    assert run.status is Status.FAILED
    assert run.error == {
        "code": "STAGE_FAILED",
        "message": "RuntimeError: boom 2",
        "stage_id": "split",
    }
    assert (await tk.all_jobs())[0].status is Status.FAILED
    assert (await event_types(tk, run_id))[-2:] == ["stage:failed", "workflow:failed"]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (NonRetryableError("card declined"), "NonRetryableError: card declined"),
        (PermissionError("no"), "PermissionError: no"),  # named in the stage's policy
        # A stub not written yet (`wfc compile` generates them so): no retry writes it.
        (
            NotImplementedError("stage `pay`: implement execute()"),
            "NotImplementedError: stage `pay`: implement execute()",
        ),
    ],
)
async def test_non_retryable_errors_fail_at_once(error: Exception, message: str) -> None:
    def execute(ctx: Any) -> Count:
        raise error

    stage = define_stage(
        id="pay",
        output=Count,
        execute=execute,
        retry=RetryPolicy(max_attempts=5, non_retryable=("PermissionError",)),
    )
    tk = make_test_kernel(WorkflowBuilder("pay", "Pay").pipe(stage).build())
    run_id = await start(tk, "pay")
    outcome = await step(tk)
    assert (outcome.error, outcome.retried) == (message, False)
    assert (await run_of(tk, run_id)).status is Status.FAILED


async def test_retry_stage_sets_its_own_delay(tk: TestKernel, script: Script) -> None:
    script.then("split", RetryStage("rate limited", delay=timedelta(minutes=5)))
    await start(tk, "linear")
    outcome = await step(tk)
    assert (outcome.error, outcome.retried) == ("rate limited", True)
    assert (await tk.all_jobs())[0].run_at == tk.clock.now() + timedelta(minutes=5)


async def test_input_that_fails_the_stage_model_is_not_retried(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", {"words": "not a list"})  # split's output is count's input
    run_id = await start(tk, "linear")
    outcome = await step(tk)
    assert (
        outcome.error
        == "Stage split returned an invalid output: words: Input should be a valid list"
    )
    assert outcome.retried  # a bad output may be a transient bug: retried
    script.actions.clear()
    tk.clock.advance(seconds=1)
    await step(tk)
    # Now corrupt the stored output count will read, to prove input validation.
    row = await stage_of(tk, run_id, "split")
    assert row.output_ref is not None
    await tk.blobs.put(row.output_ref, b'{"words": 7}')
    outcome = await step(tk)
    assert outcome.error == "Invalid input for stage count: words: Input should be a valid list"
    assert not outcome.retried
    assert (await run_of(tk, run_id)).status is Status.FAILED


async def test_a_dict_output_is_validated_and_defaults_filled(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", {"words": ["a"]}, None)
    run_id = await start(tk, "linear")
    await step(tk)
    assert (
        await tk.kernel.dispatch(
            JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split")
        )
    ).output == {"words": ["a"]}


async def test_a_non_model_output_fails_with_the_expected_type(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", 42)
    await start(tk, "linear")
    assert (await step(tk)).error == "Stage split returned int, expected Words"


async def test_a_stage_over_its_timeout_fails_the_attempt() -> None:
    async def slow(ctx: Any) -> Count:
        await asyncio.sleep(10)
        return Count(count=1)

    stage = define_stage(
        id="slow", output=Count, execute=slow, timeout_ms=20, retry=RetryPolicy(max_attempts=1)
    )
    tk = make_test_kernel(WorkflowBuilder("slow", "Slow").pipe(stage).build())
    run_id = await start(tk, "slow")
    outcome = await step(tk)
    assert outcome.error == "StageTimeoutError: Stage slow timed out after 20 ms"
    assert (await run_of(tk, run_id)).status is Status.FAILED


async def test_sync_stages_run_in_a_worker_thread_async_ones_on_the_loop() -> None:
    seen: dict[str, bool] = {}

    def sync_stage(ctx: Any) -> Count:
        seen["sync"] = threading.current_thread() is threading.main_thread()
        return Count(count=1)

    async def async_stage(ctx: Any) -> Count:
        seen["async"] = threading.current_thread() is threading.main_thread()
        return Count(count=2)

    workflow = (
        WorkflowBuilder("threads", "Threads")
        .pipe(define_stage(id="a", output=Count, execute=sync_stage))
        .pipe(define_stage(id="b", output=Count, execute=async_stage))
        .build()
    )
    tk = make_test_kernel(workflow)
    run = await tk.run("threads", {})
    assert run.status is Status.COMPLETED and run.output == {"count": 2}
    assert seen == {"sync": False, "async": True}


async def test_cancel_during_execution_discards_the_result(tk: TestKernel, script: Script) -> None:
    gate = asyncio.Event()
    cancelled = threading.Event()
    loop = asyncio.get_running_loop()
    run_id = await start(tk, "linear")

    def cancel_midway(ctx: Any) -> Words:  # runs in a worker thread
        loop.call_soon_threadsafe(gate.set)
        assert cancelled.wait(timeout=30)
        ctx.progress(0.5, "half")
        return Words(words=["late"])

    script.then("split", cancel_midway)

    async def cancel_when_running() -> None:
        await gate.wait()
        await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id, reason="user"))
        cancelled.set()

    result, _ = await asyncio.gather(
        tk.kernel.dispatch(
            JobExecute(workflow_run_id=run_id, workflow_id="linear", stage_id="split")
        ),
        cancel_when_running(),
    )
    assert result.ghost and result.outcome == "failed"
    assert (await stage_of(tk, run_id, "split")).status is Status.CANCELLED
    assert not await tk.blobs.list(f"runs/linear/{run_id}/")
    types = await event_types(tk, run_id)
    assert "stage:completed" not in types and "stage:progress" not in types


async def test_progress_logs_and_metrics_are_recorded(tk: TestKernel, script: Script) -> None:
    def chatty(ctx: Any) -> Words:
        ctx.log("INFO", "splitting", size=3)
        ctx.progress(0.25, "a quarter")
        ctx.progress(1.5)
        ctx.metric("total_cost", 0.25)
        ctx.metric("total_tokens", 12)
        return Words(words=["x"])

    script.then("split", chatty)
    run_id = await start(tk, "linear")
    await step(tk)
    row = await stage_of(tk, run_id, "split")
    assert row.metrics == {"total_cost": 0.25, "total_tokens": 12}
    logs = await tk.all_logs()
    assert [(log.level, log.message, log.fields, log.stage_record_id) for log in logs] == [
        ("INFO", "splitting", {"size": 3}, row.id)
    ]
    progress = [e.payload for e in (await tk.all_outbox()) if e.event_type == "stage:progress"]
    assert [(p["progress"], p["message"]) for p in progress] == [(0.25, "a quarter"), (1.0, None)]
    assert (await event_types(tk, run_id))[-3:] == [
        "stage:progress",
        "stage:progress",
        "stage:completed",
    ]
    run = await tk.drive(run_id)
    assert (run.total_cost, run.total_tokens) == (0.25, 12)


async def test_a_sync_stage_cannot_suspend(tk: TestKernel, script: Script) -> None:
    script.then("split", Suspend(state={}))
    await start(tk, "linear")
    outcome = await step(tk)
    assert outcome.error == "Stage split returned Suspend but is not an async stage"
    assert not outcome.retried


def keyed_split(run_id: str) -> JobExecute:
    """`linear`'s first stage, dispatched under a host-style job key."""
    return JobExecute(
        workflow_run_id=run_id,
        workflow_id="linear",
        stage_id="split",
        idempotency_key="job:1:attempt:1",
    )


async def test_the_idempotency_key_replays_a_delivery(tk: TestKernel, script: Script) -> None:
    script.then("split", RuntimeError("once"))
    run_id = await start(tk, "linear")
    cmd = keyed_split(run_id)
    first = await tk.kernel.dispatch(cmd)
    assert await tk.kernel.dispatch(cmd) == first
    assert script.calls["split"] == 1


@pytest.mark.parametrize("first_outcome", ["completed", "failed"])
async def test_the_key_is_completed_with_the_outcome_it_describes(
    tk: TestKernel, script: Script, monkeypatch: pytest.MonkeyPatch, first_outcome: str
) -> None:
    """The result is cached in the outcome's own transaction: a worker that dies right
    after that commit leaves a completed key, not one "in progress" until its TTL."""
    if first_outcome == "failed":
        script.then("split", RuntimeError("once"))
    run_id = await start(tk, "linear")

    async def died(*_args: object) -> None:
        raise AssertionError("a separate completion ran after the outcome committed")

    monkeypatch.setattr(tk.persistence, "complete_idempotency_key", died)
    cmd = keyed_split(run_id)
    first = await tk.kernel.dispatch(cmd)
    assert first.outcome == first_outcome
    assert await tk.kernel.dispatch(cmd) == first
    assert script.calls["split"] == 1


async def test_two_executors_with_one_key_run_the_stage_once(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "linear")
    cmd = JobExecute(
        workflow_run_id=run_id,
        workflow_id="linear",
        stage_id="split",
        idempotency_key="job:9:attempt:1",
    )
    results = await asyncio.gather(
        tk.kernel.dispatch(cmd), tk.kernel.dispatch(cmd), return_exceptions=True
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    # The second caller is refused while the first runs, or replays its result if it came later.
    assert done and {r.outcome for r in done} == {"completed"}
    assert all(type(r).__name__ == "IdempotencyInProgressError" for r in refused)
    assert len(done) + len(refused) == 2
    assert script.calls["split"] == 1
