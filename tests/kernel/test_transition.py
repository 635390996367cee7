"""`run.transition`: advance, complete, fail, and the rules that make it a noop."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.kernel.conftest import Script
from tests.kernel.helpers import DOC, event_types, run_of, stage_of, start, step
from wfc.errors import RetryStage
from wfc.runtime import JobExecute, RunTransition
from wfc.runtime.kernel.rows import group_output, load_outputs
from wfc.runtime.records import Status
from wfc.testing import TestKernel


async def transition(tk: TestKernel, run_id: str) -> tuple[str, int | None]:
    result = await tk.kernel.dispatch(RunTransition(workflow_run_id=run_id))
    return result.action, result.next_group


async def execute(tk: TestKernel, run_id: str, workflow_id: str, stage_id: str) -> None:
    await tk.kernel.dispatch(
        JobExecute(workflow_run_id=run_id, workflow_id=workflow_id, stage_id=stage_id)
    )


async def test_noop_while_the_group_is_open_then_advance(tk: TestKernel) -> None:
    run_id = await start(tk, "fanout")
    assert await transition(tk, run_id) == ("noop", None)
    await execute(tk, run_id, "fanout", "split")
    assert await transition(tk, run_id) == ("advanced", 2)
    rows = await tk.persistence.stages_of_run(run_id)
    assert [(r.stage_id, r.status) for r in rows] == [
        ("split", Status.COMPLETED),
        ("upper", Status.PENDING),
        ("length", Status.PENDING),
    ]
    assert [j.stage_id for j in (await tk.all_jobs())] == ["split", "upper", "length"]
    # Advancing writes no event.
    assert (await event_types(tk, run_id))[-1] == "stage:completed"
    await execute(tk, run_id, "fanout", "upper")
    assert await transition(tk, run_id) == ("noop", None)


async def test_completion_stores_the_last_group_output_and_totals(tk: TestKernel) -> None:
    run_id = await start(tk, "fanout")
    tk.clock.advance(seconds=3)
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED
    assert run.output == {"summary": "THE QUICK BROWN FOX (16)"}
    assert run.duration_ms == 3000 and run.completed_at == tk.clock.now()
    completed = [e for e in (await tk.all_outbox()) if e.event_type == "workflow:completed"]
    assert completed[0].payload["output"] == run.output


async def test_a_parallel_last_group_outputs_a_map_by_stage_id(tk: TestKernel) -> None:
    run_id = await start(tk, "fanout")
    await execute(tk, run_id, "fanout", "split")
    await transition(tk, run_id)
    await execute(tk, run_id, "fanout", "upper")
    await execute(tk, run_id, "fanout", "length")
    workflow = tk.registry.get("fanout")
    assert workflow is not None
    outputs = await load_outputs(tk.kernel.deps, await tk.persistence.stages_of_run(run_id))
    assert group_output(workflow, 2, outputs) == {
        "upper": {"words": ["THE", "QUICK", "BROWN", "FOX"]},
        "length": {"count": 16},
    }


async def test_terminal_missing_or_unregistered_runs_are_a_noop(tk: TestKernel) -> None:
    assert await transition(tk, "nope") == ("noop", None)
    run_id = await start(tk, "linear")
    done = await tk.drive(run_id)
    assert done.status is Status.COMPLETED
    assert await transition(tk, run_id) == ("noop", None)
    other = await start(tk, "fanout")
    tk.registry._workflows.pop("fanout")
    assert await transition(tk, other) == ("noop", None)


async def test_a_failed_sibling_waits_for_the_other_siblings_retry(
    tk: TestKernel, script: Script
) -> None:
    run_id = await start(tk, "fanout")
    await step(tk)  # split
    script.then("upper", RetryStage("rate limited", delay=timedelta(hours=1)))
    script.then("length", *[RuntimeError("fatal")] * 3)
    assert (await step(tk)).retried  # upper: retry in an hour
    for wait in (1, 2, 0):
        await step(tk)  # length fails; its own retries come sooner
        tk.clock.advance(seconds=wait)
    # length failed for good, but upper's retry is still queued: the run waits.
    assert (await stage_of(tk, run_id, "length")).status is Status.FAILED
    assert (await run_of(tk, run_id)).status is Status.RUNNING
    assert await transition(tk, run_id) == ("noop", None)
    run = await tk.drive(run_id)
    assert run.status is Status.FAILED
    assert run.error is not None and run.error["stage_id"] == "length"


async def test_a_failed_stage_with_a_live_job_is_still_retrying(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    await execute(tk, run_id, "linear", "split")
    row = await stage_of(tk, run_id, "split")
    await tk.persistence.update_stage(row.id, {"status": Status.FAILED, "error": "x"})
    await tk.jobs.dequeue()  # the job is RUNNING: a redelivery is in flight
    assert await transition(tk, run_id) == ("noop", None)
    await tk.jobs.fail((await tk.all_jobs())[0].id, "x", retry_at=None)
    assert await transition(tk, run_id) == ("failed", None)
    run = await run_of(tk, run_id)
    assert run.error == {"code": "STAGE_FAILED", "message": "x", "stage_id": "split"}


async def test_concurrent_transitions_queue_the_next_group_once(tk: TestKernel) -> None:
    run_id = await start(tk, "fanout")
    await execute(tk, run_id, "fanout", "split")
    results = await asyncio.gather(*(transition(tk, run_id) for _ in range(5)))
    assert sorted(results, key=str) == [("advanced", 2)] + [("noop", None)] * 4
    assert [j.stage_id for j in (await tk.all_jobs())] == ["split", "upper", "length"]


async def test_a_running_run_without_rows_gets_its_first_group(tk: TestKernel) -> None:
    run_id = await tk.create_run("linear", DOC)
    await tk.persistence.update_run(run_id, {"status": Status.RUNNING})
    assert await transition(tk, run_id) == ("advanced", 1)
    assert [j.stage_id for j in (await tk.all_jobs())] == ["split"]
    assert (await event_types(tk, run_id))[-1] == "workflow:started"
