"""`ctx.progress` in `check_completion`: checked and clamped as `execute`'s, stored as
`stage:progress` events with the poll's outcome, and dropped with it when the poll is a
ghost, as a ghost execution's are (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import kernel_on_storage
from tests.kernel.conftest import Script, Words
from tests.kernel.helpers import event_types, stage_of, start, step
from wfc.runtime import (
    CheckContext,
    NotReady,
    Ready,
    RecordingServices,
    RunCancel,
    StageContext,
    StagePollSuspended,
    Suspend,
    WorkflowBuilder,
    define_stage,
)
from wfc.runtime.records import Status
from wfc.runtime.stage import StageUsageError
from wfc.testing import TestKernel


class _Empty(BaseModel):
    pass


def _contexts() -> list[tuple[Any, RecordingServices]]:
    """An execute's context and a check's, each with its own recording services."""
    run, check = RecordingServices(), RecordingServices()
    return [
        (
            StageContext(run_id="r", stage_id="s", input=_Empty(), config=_Empty(), services=run),
            run,
        ),
        (CheckContext(run_id="r", stage_id="s", config=_Empty(), services=check), check),
    ]


async def _progress(tk: TestKernel, run_id: str) -> list[tuple[float, str | None, Any]]:
    return [
        (e.payload["progress"], e.payload["message"], e.payload["details"])
        for e in await tk.persistence.outbox_of_run(run_id)
        if e.event_type == "stage:progress"
    ]


async def _suspended_and_due(tk: TestKernel) -> str:
    run_id = await start(tk, "batch")
    assert (await step(tk)).outcome == "suspended"
    tk.clock.advance(seconds=30)
    return run_id


# The call itself: one place checks and clamps, for both contexts


def test_a_check_reports_progress_as_execute_does_and_a_unit_test_sees_it() -> None:
    for ctx, services in _contexts():
        ctx.progress(0.4, "batch", details={"done": 40, "total": 100})
        ctx.progress(1.5)
        ctx.progress(-1.0, "before")
        assert services.progress_reports == [(0.4, "batch"), (1.0, None), (0.0, "before")]
        assert services.progress_details == [{"done": 40, "total": 100}, None, None]


@pytest.mark.parametrize(
    ("details", "complaint"),
    [
        ({"when": datetime(2024, 1, 1)}, "progress details['when'] is a datetime"),
        ({"n": float("inf")}, "progress details['n'] is inf"),
        (["a"], "progress details must be a dict, not list"),
    ],
)
def test_a_check_s_details_that_are_not_json_are_refused_as_execute_s(
    details: Any, complaint: str
) -> None:
    for ctx, services in _contexts():
        with pytest.raises(StageUsageError, match=complaint.replace("[", r"\[")):
            ctx.progress(0.5, details=details)
        assert services.progress_reports == []


def test_a_check_s_details_are_a_copy() -> None:
    (_, _), (ctx, services) = _contexts()
    details = {"done": 1}
    ctx.progress(0.1, details=details)
    details["done"] = 99
    assert services.progress_details == [{"done": 1}]


# Polled: stored with the poll's outcome


async def test_a_not_ready_check_s_progress_is_stored_with_the_poll(
    tk: TestKernel, script: Script
) -> None:
    def forty_percent(ctx: Any) -> NotReady:
        ctx.progress(0.2, "submitted")
        ctx.progress(0.4, "batch running", details={"done": 40, "total": 100})
        return NotReady()

    def done(ctx: Any) -> Ready[Words]:
        ctx.progress(1.0, "batch done")
        return Ready(output=Words(words=["x"]))

    script.then("check", forty_percent, done)
    run_id = await _suspended_and_due(tk)
    assert (await tk.kernel.dispatch(StagePollSuspended())).checked == 1
    assert await _progress(tk, run_id) == [
        (0.2, "submitted", None),
        (0.4, "batch running", {"done": 40, "total": 100}),
    ]
    assert (await event_types(tk, run_id))[-2:] == ["stage:progress", "stage:progress"]
    assert (await stage_of(tk, run_id, "submit")).status is Status.SUSPENDED
    tk.clock.advance(seconds=30)
    assert (await tk.kernel.dispatch(StagePollSuspended())).resumed == 1
    assert (await _progress(tk, run_id))[-1] == (1.0, "batch done", None)
    types = await event_types(tk, run_id)
    at = types.index("stage:completed")
    assert types[at - 1] == "stage:progress"  # before the outcome, as execute's are


async def test_a_check_that_raises_keeps_its_progress_before_the_failure(
    tk: TestKernel, script: Script
) -> None:
    """As an execute that raises: what it reported is stored with the failure it ends in."""

    def half_then_raises(ctx: Any) -> Any:
        ctx.progress(0.5, "half")
        raise ConnectionError("provider down")

    script.then("check", half_then_raises)
    run_id = await _suspended_and_due(tk)
    await tk.kernel.dispatch(StagePollSuspended())
    assert (await stage_of(tk, run_id, "submit")).status is Status.FAILED
    assert await _progress(tk, run_id) == [(0.5, "half", None)]
    types = await event_types(tk, run_id)
    assert types[types.index("stage:progress") + 1] == "stage:failed"


async def test_a_ghost_check_s_progress_is_dropped_with_its_outcome(
    tk: TestKernel, script: Script
) -> None:
    """A poller whose claim ran out while it checked: another poller took the stage, so
    the late one's outcome is not written, and neither is what it reported (as a ghost
    execution's progress is not)."""
    gate = asyncio.Event()

    async def late(ctx: Any) -> Any:
        ctx.progress(0.9, "the late poller")
        await gate.wait()
        return NotReady()

    def on_time(ctx: Any) -> NotReady:
        ctx.progress(0.3, "the poller that took it")
        return NotReady()

    script.then("check", late, on_time)
    run_id = await _suspended_and_due(tk)
    first = asyncio.create_task(tk.kernel.dispatch(StagePollSuspended(claim_ms=60_000)))
    while script.calls["check"] == 0:
        await asyncio.sleep(0.01)
    tk.clock.advance(seconds=61)  # the first claim ran out
    assert (await tk.kernel.dispatch(StagePollSuspended())).checked == 1
    gate.set()
    await first
    assert await _progress(tk, run_id) == [(0.3, "the poller that took it", None)]


async def test_a_check_the_run_s_cancel_overtook_stores_no_progress(
    tk: TestKernel, script: Script
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(ctx: Any) -> Any:
        entered.set()
        ctx.progress(0.5, "half")
        await release.wait()
        return Ready(output=Words(words=["x"]))

    script.then("check", slow)
    run_id = await _suspended_and_due(tk)

    async def cancel_then_release() -> None:
        await entered.wait()
        await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id))
        release.set()

    await asyncio.gather(tk.kernel.dispatch(StagePollSuspended()), cancel_then_release())
    assert (await stage_of(tk, run_id, "submit")).status is Status.CANCELLED
    assert "stage:progress" not in await event_types(tk, run_id)


# Items of a mapped async stage: their own progress is not published, checked or executed


class _Text(BaseModel):
    text: str


class _Texts(BaseModel):
    texts: list[_Text]


def _item_execute(ctx: Any) -> Suspend:
    ctx.progress(0.1, f"item {ctx.item_index} submitted")
    return Suspend(state={"polls": 0}, poll_interval=timedelta(seconds=5))


def _item_check(state: dict[str, Any], ctx: Any) -> Any:
    state["polls"] += 1
    ctx.progress(0.5 * state["polls"], f"item check {state['polls']}")
    return NotReady() if state["polls"] < 2 else Ready(output=_Text(text="done"))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def mk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    stage = define_stage(
        id="each",
        input=_Text,
        output=_Text,
        execute=_item_execute,
        check_completion=_item_check,
        map_over="input.texts",
        at_most=2,
    )
    workflow = WorkflowBuilder("polled_items", "Polled items", input=_Texts).pipe(stage).build()
    async with kernel_on_storage(request.param, [workflow], tmp_path) as kernel:
        yield kernel


async def test_an_item_s_check_reports_no_progress_of_its_own_as_its_execute(
    mk: TestKernel,
) -> None:
    """A mapped stage's progress is its items counted (about one event per twentieth);
    an item's own reports, from `execute` or from `check_completion`, are not stored: a
    map of 10,000 polled items would write an event per item per poll."""
    run = await mk.run("polled_items", {"texts": [{"text": "a"}, {"text": "b"}]})
    assert run.status is Status.COMPLETED, run.error
    messages = [message for _, message, _ in await _progress(mk, run.id)]
    assert messages and all(m is not None and m.endswith("items") for m in messages), messages
