"""`ctx.progress(..., details=)` on the `stage:progress` event, and `ctx.artifact` kept per
attempt under the stage's blob prefix, listed for the attempt that committed."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel

from tests.kernel.conftest import Script, Words, build_workflows
from tests.kernel.helpers import run_of, stage_of, start, step
from wfc.runtime import LeaseReapStale, RunCancel, StageContext
from wfc.runtime.adapters.memory import (
    MemoryAICallLogger,
    MemoryBlobStore,
    MemoryJobTransport,
    MemoryPersistence,
    SequentialIds,
)
from wfc.runtime.hosts import process_job
from wfc.runtime.kernel.invoke import artifact_prefix, stage_artifacts
from wfc.runtime.kernel.rows import stage_prefix
from wfc.runtime.records import Status
from wfc.runtime.stage import (
    ARTIFACT_NAME_MAX,
    RecordingServices,
    StageUsageError,
    check_artifact_name,
)
from wfc.testing import FakeClock, MemoryStorage, TestKernel, make_test_kernel


class _Empty(BaseModel):
    pass


def _context() -> tuple[StageContext[Any, Any, Any], RecordingServices]:
    services = RecordingServices()
    ctx: StageContext[Any, Any, Any] = StageContext(
        run_id="r", stage_id="s", input=_Empty(), config=_Empty(), services=services
    )
    return ctx, services


async def _progress_payloads(tk: TestKernel, run_id: str) -> list[dict[str, Any]]:
    return [
        e.payload
        for e in await tk.persistence.outbox_of_run(run_id)
        if e.event_type == "stage:progress"
    ]


async def _artifacts(tk: TestKernel, run_id: str, stage_id: str) -> dict[str, bytes]:
    run = await run_of(tk, run_id)
    listed = await stage_artifacts(tk.blobs, run, await stage_of(tk, run_id, stage_id))
    return {name: await tk.blobs.get(key) for name, key in listed.items()}


# Progress details


async def test_progress_details_ride_on_the_event_in_call_order(
    tk: TestKernel, script: Script
) -> None:
    def reporting(ctx: Any) -> Words:
        ctx.progress(0.5, "half")  # the form without details still works
        details = {"done": 3, "total": 10, "files": ["a.txt"], "rate": 1.5, "ok": True}
        ctx.progress(0.75, "most", details=details)
        details["done"] = 99  # what was reported is a copy
        ctx.progress(1.0, details={"nested": {"x": None}})
        return Words(words=["x"])

    script.then("split", reporting)
    run_id = await start(tk, "linear")
    await step(tk)
    payloads = await _progress_payloads(tk, run_id)
    assert [(p["progress"], p["message"], p["details"]) for p in payloads] == [
        (0.5, "half", None),
        (
            0.75,
            "most",
            {"done": 3, "total": 10, "files": ["a.txt"], "rate": 1.5, "ok": True},
        ),
        (1.0, None, {"nested": {"x": None}}),
    ]


@pytest.mark.parametrize(
    ("details", "complaint"),
    [
        ({"when": datetime(2024, 1, 1)}, "progress details['when'] is a datetime"),
        ({"ids": {1, 2}}, "progress details['ids'] is a set"),
        ({"n": float("nan")}, "progress details['n'] is nan"),
        ({1: "a"}, "progress details has the key 1 (int)"),
        ({"a": [1, object()]}, "progress details['a'][1] is a object"),
        (["not", "a", "dict"], "progress details must be a dict, not list"),
    ],
)
def test_details_that_are_not_json_are_refused_at_the_call(details: Any, complaint: str) -> None:
    ctx, services = _context()
    with pytest.raises(StageUsageError) as raised:
        ctx.progress(0.5, "x", details=details)
    assert complaint in str(raised.value)
    assert services.progress_reports == []


async def test_a_stage_passing_bad_details_fails_at_once_naming_the_problem(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", lambda ctx: ctx.progress(0.1, details={"at": datetime(2024, 1, 1)}))
    run_id = await start(tk, "linear")
    outcome = await step(tk)
    assert outcome.outcome == "failed" and not outcome.retried
    assert outcome.error is not None
    assert outcome.error.startswith("StageUsageError: progress details['at'] is a datetime")
    assert (await run_of(tk, run_id)).status is Status.FAILED


# Artifacts


async def test_artifacts_are_stored_under_the_stage_and_listed(
    tk: TestKernel, script: Script
) -> None:
    def producing(ctx: Any) -> Words:
        ctx.artifact("raw.bin", b"\x00\x01")
        ctx.artifact("report.html", "<p>héllo</p>")
        ctx.artifact("stats.json", {"words": 4, "top": ["the"]})
        ctx.artifact("draft.txt", "first")
        ctx.artifact("draft.txt", "second")  # the last one named so is kept
        return Words(words=["x"])

    script.then("split", producing)
    run_id = await start(tk, "linear")
    assert (await step(tk)).outcome == "completed"
    assert await _artifacts(tk, run_id, "split") == {
        "draft.txt": b"second",
        "raw.bin": b"\x00\x01",
        "report.html": "<p>héllo</p>".encode(),
        "stats.json": b'{"words":4,"top":["the"]}',
    }
    run = await run_of(tk, run_id)
    listed = await stage_artifacts(tk.blobs, run, await stage_of(tk, run_id, "split"))
    assert listed["raw.bin"] == f"{stage_prefix(run, 'split')}artifacts/0.1/raw.bin"
    # A stage without artifacts lists none, and the next stage is unaffected.
    assert await _artifacts(tk, run_id, "count") == {}


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "../up", "..", "a..b", "a\\b", ".hidden", "-x", "sp ace", "x" * 129, "é.txt"],
)
def test_artifact_names_that_are_not_plain_file_names_are_refused(name: str) -> None:
    ctx, services = _context()
    with pytest.raises(StageUsageError, match="artifact name"):
        ctx.artifact(name, b"x")
    assert services.artifacts == {}


def test_plain_names_up_to_the_limit_are_accepted() -> None:
    for name in ["a", "report.html", "v1.2_final-draft.json", "x" * ARTIFACT_NAME_MAX]:
        assert check_artifact_name(name) == name


def test_artifact_data_that_is_not_json_is_refused() -> None:
    ctx, services = _context()
    with pytest.raises(StageUsageError, match=r"artifact 'when.json' is a datetime"):
        ctx.artifact("when.json", datetime(2024, 1, 1))  # type: ignore[arg-type]
    assert services.artifacts == {}


async def test_a_failed_attempt_stores_no_artifacts_and_the_retry_s_are_listed(
    tk: TestKernel, script: Script
) -> None:
    def failing(ctx: Any) -> Words:
        ctx.artifact("partial.txt", "half done")
        ctx.artifact("report.txt", "from attempt 1")
        raise RuntimeError("boom")

    def succeeding(ctx: Any) -> Words:
        ctx.artifact("report.txt", f"from attempt {ctx.attempt}")
        return Words(words=["x"])

    script.then("split", failing, succeeding)
    run_id = await start(tk, "linear")
    assert (await step(tk)).retried
    run = await run_of(tk, run_id)
    assert await tk.blobs.list(stage_prefix(run, "split")) == []
    tk.clock.advance(seconds=5)
    assert (await step(tk)).outcome == "completed"
    assert await _artifacts(tk, run_id, "split") == {"report.txt": b"from attempt 2"}


async def test_an_output_that_fails_validation_stores_no_artifacts(
    tk: TestKernel, script: Script
) -> None:
    def wrong(ctx: Any) -> Any:
        ctx.artifact("report.txt", "kept?")
        return {"words": "not a list"}

    script.then("split", wrong, wrong, wrong)
    run_id = await start(tk, "linear")
    assert (await step(tk)).outcome == "failed"
    assert await tk.blobs.list(stage_prefix(await run_of(tk, run_id), "split")) == []


async def test_a_stage_that_did_not_commit_lists_none(tk: TestKernel, script: Script) -> None:
    gate, release = threading.Event(), threading.Event()

    def slow(ctx: Any) -> Words:
        ctx.artifact("report.txt", "late")
        gate.set()
        assert release.wait(timeout=30)
        return Words(words=["x"])

    script.then("split", slow)
    run_id = await start(tk, "linear")
    running = asyncio.create_task(step(tk))
    await asyncio.to_thread(gate.wait, 30)
    await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id, reason="user"))
    release.set()
    await running
    assert (await stage_of(tk, run_id, "split")).status is Status.CANCELLED
    assert await _artifacts(tk, run_id, "split") == {}


async def test_a_ghost_attempt_never_replaces_the_committed_attempt_s_artifacts(
    tk: TestKernel, script: Script
) -> None:
    """Attempt 1 stalls past its lease; attempt 2 runs and commits; then attempt 1 wakes
    up and writes its artifact of the same name. Keys are per attempt, so it lands beside,
    and what is listed stays attempt 2's."""
    stalled, wake = threading.Event(), threading.Event()

    def stalling(ctx: Any) -> Words:
        stalled.set()
        assert wake.wait(timeout=30)
        ctx.artifact("report.txt", "ghost")
        return Words(words=["ghost"])

    def prompt(ctx: Any) -> Words:
        ctx.artifact("report.txt", "committed")
        return Words(words=["committed"])

    script.then("split", stalling, prompt)
    run_id = await start(tk, "linear")
    first = (await tk.jobs.dequeue())[0]
    ghost = asyncio.create_task(process_job(tk.kernel, first))
    await asyncio.to_thread(stalled.wait, 30)
    tk.clock.advance(minutes=10)
    await tk.kernel.dispatch(LeaseReapStale(stale_threshold_ms=5 * 60_000))
    assert (await step(tk)).outcome == "completed"  # the second delivery
    assert await _artifacts(tk, run_id, "split") == {"report.txt": b"committed"}
    wake.set()
    await ghost
    assert await _artifacts(tk, run_id, "split") == {"report.txt": b"committed"}
    run = await run_of(tk, run_id)
    assert await tk.blobs.get(artifact_prefix(run, "split", 0, 2) + "report.txt") == b"committed"


async def test_a_rerun_starts_a_new_generation_of_artifacts(tk: TestKernel, script: Script) -> None:
    from wfc.runtime import RunRerunFrom

    def producing(ctx: Any) -> Words:
        ctx.artifact("report.txt", f"run {script.calls['split']}")
        return Words(words=["x"])

    script.then("split", producing, producing)
    run_id = await start(tk, "linear")
    assert (await tk.drive(run_id)).status is Status.COMPLETED
    assert await _artifacts(tk, run_id, "split") == {"report.txt": b"run 1"}
    await tk.kernel.dispatch(RunRerunFrom(workflow_run_id=run_id, from_stage_id="split"))
    assert (await tk.drive(run_id)).status is Status.COMPLETED
    row = await stage_of(tk, run_id, "split")
    assert (row.generation, row.attempt) == (1, 1)
    assert await _artifacts(tk, run_id, "split") == {"report.txt": b"run 2"}
    assert [
        key.rsplit("/artifacts/", 1)[1]
        for key in await tk.blobs.list(stage_prefix(await run_of(tk, run_id), "split"))
        if "/artifacts/" in key
    ] == ["1.1/report.txt"]


async def test_a_suspended_stage_s_artifacts_are_listed_once_it_completes(
    tk: TestKernel, script: Script
) -> None:
    from wfc.runtime import Suspend

    def submitting(ctx: Any) -> Suspend:
        ctx.artifact("request.json", {"batch": ctx.input.text})
        return Suspend(state={"batch": ctx.input.text, "polls": 0})

    script.then("submit", submitting)
    run_id = await start(tk, "batch")
    assert (await step(tk)).outcome == "suspended"
    expected = {"request.json": b'{"batch":"the quick brown fox"}'}
    assert await _artifacts(tk, run_id, "submit") == expected
    assert (await tk.drive(run_id)).status is Status.COMPLETED
    assert (await stage_of(tk, run_id, "submit")).status is Status.COMPLETED
    assert await _artifacts(tk, run_id, "submit") == expected


def test_the_testing_example_in_the_stages_docs_runs() -> None:
    import re
    from pathlib import Path

    page = Path(__file__).parents[2] / "docs" / "stages.md"
    example = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)[-1]
    assert "RecordingServices" in example
    exec(compile(example, str(page), "exec"), {})


class _ArtifactsDown(MemoryBlobStore):
    """A blob store that stores outputs but not artifacts, the first `failures` times."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def put(self, key: str, data: bytes) -> None:
        if "/artifacts/" in key and self.failures:
            self.failures -= 1
            raise OSError("blob store unavailable")
        await super().put(key, data)


async def test_an_artifact_that_cannot_be_stored_fails_the_attempt_for_a_retry(
    script: Script,
) -> None:
    def producing(ctx: Any) -> Words:
        ctx.artifact("report.txt", "r")
        return Words(words=["x"])

    clock = FakeClock()
    blobs = _ArtifactsDown(failures=1)
    storage = MemoryStorage(
        persistence=MemoryPersistence(clock),
        jobs=MemoryJobTransport(clock, worker_id="w", ids=SequentialIds("job")),
        blobs=blobs,
        ai_calls=MemoryAICallLogger(),
    )
    tk = make_test_kernel(*build_workflows(script), clock=clock, storage=storage)
    script.then("split", producing, producing)
    run_id = await start(tk, "linear")
    first = await step(tk)
    assert (first.outcome, first.retried) == ("failed", True)
    assert first.error == "could not store artifact 'report.txt': OSError: blob store unavailable"
    assert (await stage_of(tk, run_id, "split")).output_ref is None
    tk.clock.advance(seconds=5)
    assert (await step(tk)).outcome == "completed"
    assert await _artifacts(tk, run_id, "split") == {"report.txt": b"r"}
