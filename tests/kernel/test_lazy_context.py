"""A stage's workflow context parses or copies only the earlier outputs its body reads
(`StageOutputs`), and a body that changes what it read in place changes nothing any
other reader sees: not the next stage's input or context, a sibling's that shares its
warm start, a `when` condition, the stored outputs, the run's output or the result a
caller got. On memory, SQLite and PostgreSQL, started cold (each stage read from the
store) and warm (each handed to the worker that opened it, `kernel.warm`)."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import kernel_on_storage
from tests.kernel.helpers import execute, note_outputs_made, run_of, start
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.commands import JobExecute, JobExecuteResult
from wfc.runtime.conditions import when
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import SlotTaker, TestKernel


class Bag(BaseModel):
    """An output whose `data` is typed `Any` inside: an input validated from a parsed
    output would share its inner objects with it, as a loosely typed input does (one
    validated from the stored text, as a stage's input now is, shares none)."""

    stage: str
    data: dict[str, Any]


def produced(stage_id: str) -> dict[str, Any]:
    """What stage `stage_id` returns, and so what every reader must see of it."""
    return {"stage": stage_id, "data": {"log": [stage_id]}}


# Stage → the earlier outputs its body reads with `require` (besides its input).
REQUIRES = {
    "b": ["a"],
    "c": ["a"],
    "d1": ["a", "b"],
    "d2": ["a", "b"],
    "e": ["a", "c", "d1", "d2"],
}


def scribbling(seen: dict[str, Any]) -> Workflow:
    """a → b → c → [d1, d2] → e, `e` run only while `a`'s output is as produced. Each body
    after `a` notes what it got (its input, each output it requires), then changes all
    of it in place, and checks that a second read gives the very object it changed."""

    def body(stage_id: str) -> Any:
        def run(ctx: Any) -> Bag:
            got = {sid: ctx.require(sid) for sid in REQUIRES[stage_id]}
            view = {sid: copy.deepcopy(value) for sid, value in got.items()}
            if isinstance(ctx.input, Bag):  # `e` takes none: it reads its `needs`
                view["input"] = ctx.input.model_dump(mode="json")
                ctx.input.data["log"].append(stage_id)  # its `Any` list
                ctx.input.stage = "scribbled"
            seen[stage_id] = view
            for sid, value in got.items():
                value["data"]["log"].append(stage_id)
                value["stage"] = "scribbled"
                assert ctx.require(sid) is value, "a second read gives the same object"
            return Bag.model_validate(produced(stage_id))

        return run

    def first(ctx: Any) -> Bag:
        return Bag.model_validate(produced("a"))

    return (
        WorkflowBuilder("scribble", "Bodies that change what they read", input=Bag)
        .pipe(define_stage(id="a", input=Bag, output=Bag, execute=first))
        .pipe(define_stage(id="b", input=Bag, output=Bag, execute=body("b")))
        .pipe(define_stage(id="c", input=Bag, output=Bag, execute=body("c")))
        .parallel(
            [
                define_stage(id="d1", input=Bag, output=Bag, execute=body("d1")),
                define_stage(id="d2", input=Bag, output=Bag, execute=body("d2")),
            ]
        )
        .pipe(
            define_stage(
                id="e",
                output=Bag,
                execute=body("e"),
                needs=["a", "c", "d1", "d2"],
                when=when.a.stage == "a",
            )
        )
        .build()
    )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def drive(tk: TestKernel, run_id: str, *, warm: bool) -> JobExecuteResult:
    """Run `run_id` to its end; the result `job.execute` gave for its first stage, which
    the caller changes in place as soon as it gets it (before any later stage runs).
    `warm`: a two-slot worker hands itself every stage it opens (the two siblings share
    one warm start); else each stage is dequeued and started from the store."""
    worker = SlotTaker(2)
    (job,) = await tk.jobs.dequeue()
    command = execute(job).model_copy(update={"job_id": job.id})
    assert isinstance(command, JobExecute)
    if warm:
        with handing_off_to(worker):
            first = await tk.kernel.dispatch(command)
        _scribble(first)
        while worker.taken:
            jobs, worker.taken = worker.taken, []
            for handed in jobs:
                with handing_off_to(worker):
                    assert (await process_job(tk.kernel, handed)).outcome == "completed"
    else:
        first = await tk.kernel.dispatch(command)
        _scribble(first)
        while leased := await tk.jobs.dequeue():
            assert (await process_job(tk.kernel, leased[0])).outcome == "completed"
    assert isinstance(first, JobExecuteResult)
    return first


def _scribble(result: Any) -> None:
    """What a caller of `job.execute` may do with the output it got back."""
    assert isinstance(result, JobExecuteResult)
    result.output["data"]["log"].append("caller")
    result.output["stage"] = "caller"


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
async def test_a_body_changing_what_it_read_changes_nothing_another_reader_sees(
    store: str, warm: bool, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}
    async with kernel_on_storage(store, [scribbling(seen)], tmp_path) as tk:
        run_id = await start(tk, "scribble", {"stage": "input", "data": {}})
        first = await drive(tk, run_id, warm=warm)
        run = await run_of(tk, run_id)
        rows = await tk.persistence.stages_of_run(run_id)
        stored = {
            row.stage_id: json.loads(await tk.kernel.deps.blobs.get(row.output_ref or ""))
            for row in rows
        }
    inputs = {"b": "a", "c": "b", "d1": "c", "d2": "c"}
    assert seen == {
        stage_id: {
            **{sid: produced(sid) for sid in REQUIRES[stage_id]},
            **({"input": produced(inputs[stage_id])} if stage_id in inputs else {}),
        }
        for stage_id in REQUIRES
    }
    assert [row.status for row in rows] == [Status.COMPLETED] * 6  # `e`'s `when` held
    assert stored == {row.stage_id: produced(row.stage_id) for row in rows}
    assert run.output == produced("e")
    # The caller's changes reached no later stage (`seen`), and no body's reached it.
    assert first.output == {"stage": "caller", "data": {"log": ["a", "caller"]}}


def chain() -> Workflow:
    """a → b → c → d, each taking the one before's output and reading nothing else, but
    `d`, which reads `a`'s output twice."""

    def step(stage_id: str) -> Any:
        def run(ctx: Any) -> Bag:
            if stage_id == "d":
                assert ctx.require("a") is ctx.require("a")
            return Bag.model_validate(produced(stage_id))

        return run

    builder = WorkflowBuilder("chain", "Four in a row", input=Bag)
    for stage_id in "abcd":
        builder = builder.pipe(
            define_stage(id=stage_id, input=Bag, output=Bag, execute=step(stage_id))
        )
    return builder.build()


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
async def test_an_output_is_parsed_or_copied_only_for_the_readers_that_read_it(
    store: str, warm: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No output is parsed for the stage that takes it as input, whose model is validated
    from the stored text itself; the last one's is parsed for the run's output, and `a`'s
    once for `d`, which reads it twice: no stage pays for the earlier outputs it does not
    read, nor for a tree its input would only be copied from."""
    made: Counter[str] = Counter()

    def note(value: Any) -> None:
        made[value["stage"]] += 1

    note_outputs_made(monkeypatch, note)
    async with kernel_on_storage(store, [chain()], tmp_path) as tk:
        run_id = await start(tk, "chain", {"stage": "input", "data": {}})
        await drive(tk, run_id, warm=warm)
        run = await run_of(tk, run_id)
    assert run.output == produced("d")
    assert made == {"a": 1, "d": 1}
