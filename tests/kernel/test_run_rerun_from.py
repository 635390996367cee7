"""`run.rerunFrom`: what is deleted, what is kept, and when it is refused."""

from __future__ import annotations

import pytest

from tests.kernel.conftest import Script
from tests.kernel.helpers import DOC, run_of, stage_of, start, step
from wfc.errors import RecordNotFoundError, RerunRefusedError, StageNotFoundError
from wfc.runtime import RunRerunFrom
from wfc.runtime.records import Status
from wfc.testing import TestKernel


async def rerun(tk: TestKernel, run_id: str, stage_id: str, key: str | None = None) -> list[str]:
    result = await tk.kernel.dispatch(
        RunRerunFrom(workflow_run_id=run_id, from_stage_id=stage_id, idempotency_key=key)
    )
    return result.deleted_stages


async def test_rerun_from_a_middle_group(tk: TestKernel, script: Script) -> None:
    run_id = await start(tk, "fanout")
    first = await tk.drive(run_id)
    assert first.status is Status.COMPLETED
    split_before = await stage_of(tk, run_id, "split")
    tk.clock.advance(seconds=5)
    # Rerunning one parallel sibling reruns its whole group and everything after.
    assert await rerun(tk, run_id, "length") == ["upper", "length", "join"]
    run = await run_of(tk, run_id)
    assert run.status is Status.RUNNING and run.started_at == tk.clock.now()
    assert (run.completed_at, run.output, run.duration_ms) == (None, None, None)
    assert await tk.blobs.list(f"runs/fanout/{run_id}/join/") == []
    assert await tk.blobs.list(f"runs/fanout/{run_id}/split/") != []
    rows = await tk.persistence.stages_of_run(run_id)
    assert [(r.stage_id, r.status, r.generation) for r in rows] == [
        ("split", Status.COMPLETED, 0),
        ("upper", Status.PENDING, 1),
        ("length", Status.PENDING, 1),
    ]
    second = await tk.drive(run_id)
    assert second.status is Status.COMPLETED and second.output == first.output
    assert await stage_of(tk, run_id, "split") == split_before
    assert script.calls["split"] == 1 and script.calls["join"] == 2
    assert (await stage_of(tk, run_id, "join")).generation == 1


async def test_rerun_a_failed_run_from_the_start(tk: TestKernel, script: Script) -> None:
    script.then("split", *[RuntimeError("down")] * 3)
    run_id = await start(tk, "linear")
    assert (await tk.drive(run_id)).status is Status.FAILED
    assert await rerun(tk, run_id, "split") == ["split"]
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED and run.error is None


@pytest.mark.parametrize("status", [Status.PENDING, Status.RUNNING, Status.CANCELLED])
async def test_only_finished_runs_can_be_rerun(tk: TestKernel, status: Status) -> None:
    run_id = await tk.create_run("linear", DOC)
    await tk.persistence.update_run(run_id, {"status": status})
    with pytest.raises(RerunRefusedError, match=f"it is {status.value}"):
        await rerun(tk, run_id, "split")


async def test_rerun_refusals(tk: TestKernel) -> None:
    with pytest.raises(RecordNotFoundError):
        await rerun(tk, "nope", "split")
    run_id = await tk.create_run("linear", DOC)
    await tk.persistence.update_run(run_id, {"status": Status.FAILED})
    with pytest.raises(StageNotFoundError):
        await rerun(tk, run_id, "zzz")
    with pytest.raises(RerunRefusedError, match="previous stages have not been executed"):
        await rerun(tk, run_id, "count")
    assert (await run_of(tk, run_id)).status is Status.FAILED


async def test_rerun_while_a_stage_is_suspended_is_refused(tk: TestKernel) -> None:
    run_id = await start(tk, "batch")
    assert (await step(tk)).outcome == "suspended"
    with pytest.raises(RerunRefusedError, match="it is RUNNING"):
        await rerun(tk, run_id, "submit")
    assert (await stage_of(tk, run_id, "submit")).status is Status.SUSPENDED


async def test_rerun_with_a_key_happens_once(tk: TestKernel, script: Script) -> None:
    run_id = await start(tk, "linear")
    await tk.drive(run_id)
    assert await rerun(tk, run_id, "count", key="r1") == ["count", "report"]
    assert await rerun(tk, run_id, "count", key="r1") == ["count", "report"]
    assert len([j for j in (await tk.all_jobs()) if j.stage_id == "count"]) == 2
