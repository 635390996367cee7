"""`when`: a stage runs only if its condition holds; else it is SKIPPED, with its event and
no job, and so are stages that need nothing but skipped stages (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import kernel_on_storage
from wfc.runtime import WorkflowBuilder, all_of, define_stage, negate, when
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel


class Doc(BaseModel):
    text: str
    confidence: float = 1.0


class Label(BaseModel):
    label: str


class Review(BaseModel):
    approved: bool


class Note(BaseModel):
    sent: bool


class Published(BaseModel):
    label: str
    reviewed: bool


calls: Counter[str] = Counter()


def classify(ctx: Any) -> Label:
    calls["classify"] += 1
    return Label(label="spam" if "buy" in ctx.input.text else "ham")


def review(ctx: Any) -> Review:
    calls["review"] += 1
    return Review(approved=True)


def notify(ctx: Any) -> Note:
    calls["notify"] += 1
    return Note(sent=True)


def publish(ctx: Any) -> Published:
    calls["publish"] += 1
    reviewed = ctx.optional("review")
    return Published(label=ctx.require("classify")["label"], reviewed=reviewed is not None)


def workflows() -> list[Workflow]:
    triage = (
        WorkflowBuilder("triage", "Triage", input=Doc)
        .pipe(define_stage(id="classify", input=Doc, output=Label, execute=classify))
        .parallel(
            [
                define_stage(
                    id="review",
                    output=Review,
                    execute=review,
                    needs=["classify"],
                    when=when.input.confidence < 0.8,
                ),
                define_stage(
                    id="notify",
                    output=Note,
                    execute=notify,
                    needs=["classify"],
                    when=all_of(when.classify.label == "spam", negate(when.input.text == "")),
                ),
            ]
        )
        .pipe(
            define_stage(
                id="publish",
                output=Published,
                execute=publish,
                needs=["classify"],
                optional_needs=["review"],
            )
        )
        .build()
    )
    chain = (
        WorkflowBuilder("chain", "Chain", input=Doc)
        .pipe(
            define_stage(
                id="maybe",
                input=Doc,
                output=Label,
                execute=classify,
                when=when.input.text.length() > 3,
            )
        )
        .pipe(define_stage(id="after", input=Label, output=Review, execute=review))
        .build()
    )
    broken = (
        WorkflowBuilder("broken", "Broken", input=Doc)
        .pipe(
            define_stage(
                id="never", input=Doc, output=Label, execute=classify, when=when.input.text > 3
            )
        )
        .build()
    )
    return [triage, chain, broken]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def wk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    calls.clear()
    async with kernel_on_storage(request.param, workflows(), tmp_path) as kernel:
        yield kernel


async def _statuses(wk: TestKernel, run_id: str) -> dict[str, Status]:
    return {row.stage_id: row.status for row in await wk.persistence.stages_of_run(run_id)}


async def _skipped_events(wk: TestKernel, run_id: str) -> list[str]:
    events = await wk.persistence.outbox_of_run(run_id)
    return [e.payload["stage_id"] for e in events if e.event_type == "stage:skipped"]


async def test_false_conditions_skip_their_stages_and_the_run_goes_on(wk: TestKernel) -> None:
    run = await wk.run("triage", {"text": "hello there", "confidence": 0.95})
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"label": "ham", "reviewed": False}
    assert await _statuses(wk, run.id) == {
        "classify": Status.COMPLETED,
        "review": Status.SKIPPED,
        "notify": Status.SKIPPED,
        "publish": Status.COMPLETED,
    }
    assert sorted(await _skipped_events(wk, run.id)) == ["notify", "review"]
    assert (calls["review"], calls["notify"]) == (0, 0)
    jobs = {job.stage_id for job in await wk.jobs.jobs_of_run(run.id)}
    assert jobs == {"classify", "publish"}  # a skipped stage is never queued


async def test_true_conditions_run_their_stages_and_optional_needs_are_seen(
    wk: TestKernel,
) -> None:
    run = await wk.run("triage", {"text": "buy now", "confidence": 0.5})
    assert run.status is Status.COMPLETED, run.error
    assert run.output == {"label": "spam", "reviewed": True}
    assert set((await _statuses(wk, run.id)).values()) == {Status.COMPLETED}
    assert await _skipped_events(wk, run.id) == []


async def test_a_stage_that_needs_only_skipped_stages_is_skipped_too(wk: TestKernel) -> None:
    run = await wk.run("chain", {"text": "hi"})
    assert run.status is Status.COMPLETED, run.error
    assert await _statuses(wk, run.id) == {"maybe": Status.SKIPPED, "after": Status.SKIPPED}
    assert run.output is None
    assert calls == Counter()
    ran = await wk.run("chain", {"text": "a longer text"})
    assert ran.output == {"approved": True}


async def test_a_condition_that_cannot_be_evaluated_fails_the_run_with_the_reason(
    wk: TestKernel,
) -> None:
    run = await wk.run("broken", {"text": "abc"})
    assert run.status is Status.FAILED
    assert run.error is not None and run.error["code"] == "CONDITION_FAILED"
    assert "cannot order str 'abc' and int 3" in run.error["message"]
    assert calls["classify"] == 0
