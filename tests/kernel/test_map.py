"""`map`: a stage runs once per item of a list, each item durable on its own, the results
gathered once in item order (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from tests.databases import kernel_on_storage, open_storage
from wfc.cli import cli
from wfc.errors import RerunRefusedError
from wfc.plan import InputSource, ItemFailure, MapSpec, RetryPolicy
from wfc.runtime import (
    Failed,
    JobExecute,
    NotReady,
    Ready,
    RunCancel,
    RunRerunFrom,
    StageDefinition,
    Suspend,
    WorkflowBuilder,
    define_stage,
    when,
)
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import FakeClock, TestKernel, make_test_kernel


class Text(BaseModel):
    text: str


class Batch(BaseModel):
    texts: list[Text]


class Length(BaseModel):
    length: int


class Total(BaseModel):
    total: int
    failed: int


calls: Counter[int] = Counter()
paused_items: dict[int, tuple[threading.Event, threading.Event]] = {}
fail_once: set[int] = set()
fail_always: set[int] = set()


def measure(ctx: Any) -> Length:
    index = ctx.item_index
    calls[index] += 1
    if index in paused_items:
        entered, release = paused_items[index]
        entered.set()
        release.wait(5)
    assert ctx.item_count is not None
    if index in fail_always:
        raise ValueError(f"item {index} is bad")
    if index in fail_once and calls[index] == 1:
        raise ConnectionError(f"item {index} hiccup")
    ctx.metric("total_cost", 0.25)
    return Length(length=len(ctx.input.text))


def total(ctx: Any) -> Total:
    results = ctx.require("measure")
    if results and isinstance(results[0], dict) and "index" in results[0]:
        lengths = [r["output"]["length"] for r in results if r["error"] is None]
        failed = sum(r["error"] is not None for r in results)
        return Total(total=sum(lengths), failed=failed)
    return Total(total=sum(r["length"] for r in results), failed=0)


def _mapped(
    stage: StageDefinition,
    over: tuple[str, ...],
    *,
    at_most: int = 3,
    policy: ItemFailure = ItemFailure.FAIL,
) -> StageDefinition:
    """A stage definition made mapped (the builder's `map_over` comes with the compiler)."""
    spec = MapSpec(over=over, at_most=at_most, on_item_failure=policy)
    plan = stage.plan.model_copy(update={"map": spec, "input_source": InputSource.ITEM})
    return replace(stage, plan=plan)


def _workflow(workflow_id: str, policy: ItemFailure) -> Workflow:
    retry = RetryPolicy(max_attempts=2, backoff_initial_ms=0)
    return (
        WorkflowBuilder(workflow_id, workflow_id, input=Batch)
        .pipe(
            _mapped(
                define_stage(id="measure", input=Text, output=Length, execute=measure, retry=retry),
                ("input", "texts"),
                policy=policy,
            )
        )
        .pipe(define_stage(id="total", input=None, output=Total, execute=total, needs=["measure"]))
        .build()
    )


def submit(ctx: Any) -> Suspend:
    calls[ctx.item_index] += 1
    return Suspend(state={"text": ctx.input.text, "polls": 0}, poll_interval=timedelta(seconds=5))


def check(state: dict[str, Any], ctx: Any) -> Any:
    state["polls"] += 1
    if state["text"] == "xxx":
        return Failed(error="the provider refused it")
    if state["text"] == "boom":
        raise RuntimeError("the check blew up")
    if state["polls"] < 2:
        return NotReady()
    return Ready(output=Length(length=len(state["text"])))


def _polled(policy: ItemFailure) -> Workflow:
    stage = define_stage(
        id="measure", input=Text, output=Length, execute=submit, check_completion=check
    )
    return (
        WorkflowBuilder(f"polled_{policy.value}", "Polled", input=Batch)
        .pipe(_mapped(stage, ("input", "texts"), at_most=2, policy=policy))
        .pipe(define_stage(id="total", input=None, output=Total, execute=total, needs=["measure"]))
        .build()
    )


class Scale(BaseModel):
    factor: int = 1


def scaled(ctx: Any) -> Length:
    return Length(length=len(ctx.input.text) * ctx.config.factor)


def _scaled() -> Workflow:
    stage = define_stage(id="measure", input=Text, output=Length, execute=scaled, config=Scale)
    return (
        WorkflowBuilder("scaled", "Scaled", input=Batch)
        .pipe(_mapped(stage, ("input", "texts"), at_most=2))
        .pipe(define_stage(id="total", input=None, output=Total, execute=total, needs=["measure"]))
        .build()
    )


class Gated(BaseModel):
    texts: list[Text]
    measure: bool = True


class Count(BaseModel):
    n: int


def count_texts(ctx: Any) -> Count:
    return Count(n=len(ctx.input.texts))


def both(ctx: Any) -> Total:
    lengths = ctx.optional("measure")
    return Total(total=sum(r["length"] for r in lengths or []), failed=ctx.require("count")["n"])


def _beside() -> Workflow:
    """A mapped stage with a `when`, in a parallel group beside a plain stage."""
    gated = define_stage(
        id="measure",
        input=Text,
        output=Length,
        execute=measure,
        when=when.input.measure == True,  # noqa: E712 (a condition, not a comparison)
    )
    return (
        WorkflowBuilder("beside", "Beside", input=Gated)
        .parallel(
            [
                _mapped(gated, ("input", "texts"), at_most=2),
                define_stage(id="count", input=Gated, output=Count, execute=count_texts),
            ]
        )
        .pipe(
            define_stage(
                id="both",
                input=None,
                output=Total,
                execute=both,
                needs=["measure", "count"],
                optional_needs=["measure"],
            )
        )
        .build()
    )


split_passes: Counter[str] = Counter()


def split(ctx: Any) -> Batch:
    """A list that differs on each pass: three texts first, then two longer ones."""
    split_passes["split"] += 1
    if split_passes["split"] == 1:
        return Batch(texts=[Text(text="a"), Text(text="bb"), Text(text="ccc")])
    return Batch(texts=[Text(text="dddd"), Text(text="eeeee")])


def _split_then_mapped() -> Workflow:
    """A map over an earlier stage's output, which a rerun of that stage changes."""
    return (
        WorkflowBuilder("resplit", "Resplit", input=Text)
        .pipe(define_stage(id="split", input=Text, output=Batch, execute=split))
        .pipe(
            _mapped(
                define_stage(id="measure", input=Text, output=Length, execute=measure),
                ("split", "texts"),
            )
        )
        .pipe(define_stage(id="total", input=None, output=Total, execute=total, needs=["measure"]))
        .build()
    )


def workflows() -> list[Workflow]:
    return [
        _split_then_mapped(),
        _beside(),
        _scaled(),
        _workflow("strict", ItemFailure.FAIL),
        _workflow("lenient", ItemFailure.CONTINUE),
        _polled(ItemFailure.FAIL),
        _polled(ItemFailure.CONTINUE),
    ]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def mk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    calls.clear()
    fail_once.clear()
    fail_always.clear()
    split_passes.clear()
    async with kernel_on_storage(request.param, workflows(), tmp_path) as kernel:
        yield kernel


def _texts(count: int) -> list[dict[str, str]]:
    return [{"text": "x" * (index % 7)} for index in range(count)]


async def _row(mk: TestKernel, run_id: str, stage_id: str = "measure") -> Any:
    rows = {row.stage_id: row for row in await mk.persistence.stages_of_run(run_id)}
    return rows[stage_id]


@pytest.mark.parametrize("count", [0, 1, 25, 1000])
async def test_a_map_runs_each_item_once_and_gathers_them_in_order(
    mk: TestKernel, count: int
) -> None:
    run = await mk.run("strict", {"texts": _texts(count)})
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"total": sum(index % 7 for index in range(count)), "failed": 0}
    assert calls == Counter(range(count))
    row = await _row(mk, run.id)
    assert (row.items_total, row.items_done, row.items_failed) == (count, count, 0)
    # Each item's cost is its own; they add up into the stage and the run.
    assert row.metrics.get("total_cost", 0) == pytest.approx(0.25 * count)
    assert run.total_cost == pytest.approx(0.25 * count)
    items = await mk.persistence.items_of_stage(run.id, "measure")
    assert [item.item_index for item in items] == list(range(count))
    assert all(item.status is Status.COMPLETED and item.attempt == 1 for item in items)
    events = [e.event_type for e in await mk.persistence.outbox_of_run(run.id)]
    assert events.count("stage:completed") == 2  # the map once, not once per item


async def test_at_most_n_items_are_queued_at_once(mk: TestKernel) -> None:
    run_id = await mk.create_run("strict", {"texts": _texts(10)})
    await mk.tick()  # claims the run: the map opens
    jobs = [job for job in await mk.jobs.jobs_of_run(run_id) if job.stage_id == "measure"]
    assert len(jobs) == 3
    assert sorted(job.payload["item"] for job in jobs) == [0, 1, 2]
    run = await mk.drive(run_id)
    assert run.status is Status.COMPLETED, run.error
    all_jobs = [job for job in await mk.jobs.jobs_of_run(run_id) if job.stage_id == "measure"]
    assert sorted(job.payload["item"] for job in all_jobs) == list(range(10))


async def test_an_item_is_retried_on_its_own(mk: TestKernel) -> None:
    fail_once.update({2, 5})
    run = await mk.run("strict", {"texts": _texts(8)})
    assert run.status is Status.COMPLETED, run.error
    assert calls[2] == calls[5] == 2 and calls[0] == 1
    items = {
        item.item_index: item for item in await mk.persistence.items_of_stage(run.id, "measure")
    }
    assert items[2].attempt == 2 and items[0].attempt == 1


async def test_an_item_that_fails_for_good_fails_the_stage_and_the_run(mk: TestKernel) -> None:
    fail_always.add(4)
    run = await mk.run("strict", {"texts": _texts(12)})
    assert run.status is Status.FAILED
    assert run.error is not None and run.error["stage_id"] == "measure"
    assert "Item 4 failed: ValueError: item 4 is bad" in run.error["message"]
    row = await _row(mk, run.id)
    assert row.status is Status.FAILED
    assert calls[4] == 2
    assert max(calls) < 12  # items after the failure were never queued


async def test_an_item_that_raises_keeps_its_traceback_on_its_stage_s_log_lines(
    mk: TestKernel,
) -> None:
    fail_always.add(4)
    run = await mk.run("strict", {"texts": _texts(6)})
    row = await _row(mk, run.id)
    lines = [line for line in await mk.persistence.logs_of_run(run.id) if "item" in line.fields]
    # The first attempt's WARN (it was retried), then the last one's ERROR, on the stage's row.
    assert [(line.level, line.fields["item"]) for line in lines] == [("WARN", 4), ("ERROR", 4)]
    assert all(line.stage_record_id == row.id for line in lines)
    where = lines[-1].fields["traceback"]
    assert "in measure" in where and "ValueError: item 4 is bad" in where


@pytest.fixture
async def cli_kernel(tmp_path: Path) -> AsyncIterator[tuple[TestKernel, str]]:
    """A kernel on a SQLite file migrated as the CLI wants it, and the file's URL."""
    calls.clear()
    fail_always.clear()
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    clock = FakeClock()
    storage = open_storage(url, clock=clock)
    await storage.prepare()
    yield make_test_kernel(*workflows(), clock=clock, storage=storage), url
    await storage.close()
    fail_always.clear()


async def test_runs_show_prints_where_each_item_raised(
    cli_kernel: tuple[TestKernel, str],
) -> None:
    mk, url = cli_kernel
    fail_always.add(4)
    run = await mk.run("lenient", {"texts": _texts(6)})
    show = ["runs", "show", run.id, "--items", "measure", "--db", url]
    text = await asyncio.to_thread(CliRunner().invoke, cli, show)
    assert text.exit_code == 0, text.output
    assert "item 4 raised:" in text.output and "ValueError: item 4 is bad" in text.output
    # The mapped stage's attempts are its items': its own column shows none, not a 0.
    measure_row = next(line for line in text.output.splitlines() if line.startswith("│ measure"))
    assert measure_row.split("│")[3].strip() == "–"
    shown = await asyncio.to_thread(CliRunner().invoke, cli, [*show, "--json"])
    items = json.loads(shown.output)["items"]
    assert "in measure" in items[4]["traceback"]
    assert [item["traceback"] for item in items if item["index"] != 4] == [None] * 5


async def test_an_item_whose_check_raises_keeps_its_traceback(mk: TestKernel) -> None:
    texts = [{"text": t} for t in ["a", "boom", "cc"]]
    run = await mk.run("polled_continue", {"texts": texts})
    assert run.status is Status.COMPLETED, run.error
    row = await _row(mk, run.id)
    (line,) = [line for line in await mk.persistence.logs_of_run(run.id) if line.level == "ERROR"]
    assert line.stage_record_id == row.id and line.fields["item"] == 1
    assert "in check" in line.fields["traceback"]
    assert "RuntimeError: the check blew up" in line.fields["traceback"]


async def test_with_continue_a_failed_item_is_a_result_and_the_run_completes(
    mk: TestKernel,
) -> None:
    fail_always.update({1, 6})
    run = await mk.run("lenient", {"texts": _texts(9)})
    assert run.status is Status.COMPLETED, run.error
    expected = sum(index % 7 for index in range(9) if index not in (1, 6))
    assert run.output == {"total": expected, "failed": 2}
    row = await _row(mk, run.id)
    assert (row.items_done, row.items_failed) == (7, 2)
    gathered = await mk.persistence.stages_of_run(run.id)
    assert gathered[0].status is Status.COMPLETED


async def test_rerun_of_failed_items_runs_only_those(mk: TestKernel) -> None:
    fail_always.update({1, 6})
    run = await mk.run("lenient", {"texts": _texts(9)})
    assert run.output == {"total": sum(i % 7 for i in range(9) if i not in (1, 6)), "failed": 2}
    fail_always.clear()
    calls.clear()
    await mk.kernel.dispatch(
        RunRerunFrom(workflow_run_id=run.id, from_stage_id="measure", only_failed_items=True)
    )
    rerun = await mk.drive(run.id)
    assert rerun.status is Status.COMPLETED, rerun.error
    assert calls == Counter({1: 1, 6: 1})
    assert rerun.output == {"total": sum(i % 7 for i in range(9)), "failed": 0}
    with pytest.raises(RerunRefusedError):
        await mk.kernel.dispatch(
            RunRerunFrom(workflow_run_id=run.id, from_stage_id="measure", only_failed_items=True)
        )


async def test_rerun_of_a_failed_strict_map_runs_the_items_that_did_not_complete(
    mk: TestKernel,
) -> None:
    fail_always.add(4)
    run = await mk.run("strict", {"texts": _texts(12)})
    assert run.status is Status.FAILED
    completed_before = {i for i, n in calls.items() if i != 4}
    fail_always.clear()
    calls.clear()
    await mk.kernel.dispatch(
        RunRerunFrom(workflow_run_id=run.id, from_stage_id="measure", only_failed_items=True)
    )
    rerun = await mk.drive(run.id)
    assert rerun.status is Status.COMPLETED, rerun.error
    assert set(calls) == set(range(12)) - completed_before
    assert all(n == 1 for n in calls.values())


async def test_a_full_rerun_runs_every_item_again(mk: TestKernel) -> None:
    run = await mk.run("strict", {"texts": _texts(5)})
    calls.clear()
    await mk.kernel.dispatch(RunRerunFrom(workflow_run_id=run.id, from_stage_id="measure"))
    rerun = await mk.drive(run.id)
    assert rerun.status is Status.COMPLETED, rerun.error
    assert calls == Counter(range(5))


async def test_a_rerun_upstream_maps_over_the_new_list_not_one_read_before(
    mk: TestKernel,
) -> None:
    """The kernel that read the first pass's list runs the second pass's items: it must see
    the list the rerun stored (the same keys, a new generation), not the one it kept."""
    run = await mk.run("resplit", {"text": "x"})
    assert run.status is Status.COMPLETED and run.output == {"total": 6, "failed": 0}
    await mk.kernel.dispatch(RunRerunFrom(workflow_run_id=run.id, from_stage_id="split"))
    rerun = await mk.drive(run.id)
    assert rerun.status is Status.COMPLETED, rerun.error
    assert rerun.output == {"total": 9, "failed": 0}


async def test_cancelling_the_run_cancels_every_item(mk: TestKernel) -> None:
    run_id = await mk.create_run("strict", {"texts": _texts(10)})
    await mk.tick()
    await mk.work(max_jobs=2)
    await mk.kernel.dispatch(RunCancel(workflow_run_id=run_id, reason="enough"))
    await mk.work()
    jobs = [job for job in await mk.jobs.jobs_of_run(run_id) if job.stage_id == "measure"]
    assert all(job.status in (Status.CANCELLED, Status.COMPLETED, Status.FAILED) for job in jobs)
    assert sum(calls.values()) <= 5
    row = await _row(mk, run_id)
    assert row.status is Status.CANCELLED


async def test_a_paused_delivery_of_an_item_is_a_ghost_and_the_item_counts_once(
    mk: TestKernel,
) -> None:
    """A delivery paused in the item's body past its lease while a later delivery runs
    and commits the item: the paused one's outcome is discarded, the item counts once."""
    run_id = await mk.create_run("strict", {"texts": _texts(2)})
    await mk.tick()
    first = JobExecute(
        workflow_run_id=run_id, workflow_id="strict", stage_id="measure", item=0, attempt=1
    )
    entered, release = threading.Event(), threading.Event()
    paused_items[0] = (entered, release)
    late = asyncio.create_task(mk.kernel.dispatch(first))
    await asyncio.to_thread(entered.wait, 5)
    del paused_items[0]
    fresh = await mk.kernel.dispatch(first.model_copy(update={"attempt": 2}))
    release.set()
    ghost = await late
    assert fresh.outcome == "completed" and not fresh.ghost
    assert ghost.ghost, ghost
    row = await _row(mk, run_id)
    assert (row.items_done, row.items_failed) == (1, 0)
    [item] = [
        i for i in await mk.persistence.items_of_stage(run_id, "measure") if i.item_index == 0
    ]
    assert (item.status, item.attempt) == (Status.COMPLETED, 2)


async def test_items_of_an_async_stage_suspend_and_are_polled_to_their_end(mk: TestKernel) -> None:
    texts = [{"text": t} for t in ["a", "bb", "", "dddd", "ee"]]
    run = await mk.run("polled_fail", {"texts": texts})
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"total": 9, "failed": 0}
    assert calls == Counter(range(5))  # each item submitted once, then only polled
    items = await mk.persistence.items_of_stage(run.id, "measure")
    assert [i.status for i in items] == [Status.COMPLETED] * 5
    assert all(i.suspended_state and i.suspended_state["polls"] == 1 for i in items)  # kept
    jobs = [j for j in await mk.jobs.jobs_of_run(run.id) if j.stage_id == "measure"]
    assert all(j.status is Status.COMPLETED for j in jobs)  # parked jobs closed


async def test_a_polled_item_that_fails_follows_the_failure_policy(mk: TestKernel) -> None:
    texts = [{"text": t} for t in ["a", "xxx", "cc"]]
    lenient = await mk.run("polled_continue", {"texts": texts})
    assert lenient.status is Status.COMPLETED, lenient.error
    assert lenient.output == {"total": 3, "failed": 1}
    strict = await mk.run("polled_fail", {"texts": texts})
    assert strict.status is Status.FAILED
    assert strict.error is not None
    assert "Item 1 failed: the provider refused it" in strict.error["message"]


async def test_every_item_sees_the_run_s_config_not_the_defaults(mk: TestKernel) -> None:
    """Items are queued by earlier items, from the run's state alone: the run's config
    travels with each item's job."""
    texts = {"texts": [{"text": "ab"}] * 7}
    run_id = await mk.create_run("scaled", texts, config={"measure": {"factor": 3}})
    run = await mk.drive(run_id)
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"total": 7 * 2 * 3, "failed": 0}


async def test_a_mapped_stage_with_a_when_beside_another_stage(mk: TestKernel) -> None:
    texts = [{"text": "abc"}, {"text": "de"}, {"text": ""}]
    ran = await mk.run("beside", {"texts": texts})
    assert ran.status is Status.COMPLETED, ran.error
    assert ran.output == {"total": 5, "failed": 3}
    assert calls == Counter(range(3))
    calls.clear()
    skipped = await mk.run("beside", {"texts": texts, "measure": False})
    assert skipped.status is Status.COMPLETED, skipped.error
    assert skipped.output == {"total": 0, "failed": 3}
    assert calls == Counter()  # decided once for the whole stage: no item ran
    rows = {row.stage_id: row.status for row in await mk.persistence.stages_of_run(skipped.id)}
    assert rows["measure"] is Status.SKIPPED
    assert await mk.persistence.items_of_stage(skipped.id, "measure") == []
