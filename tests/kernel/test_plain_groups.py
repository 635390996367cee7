"""A plain group (no `when`, map or built-in stage) opens without asking the deciders
(`Workflow.plain_group`, `opening.open_next`), unless a stage before it was skipped: then
the deciders run, since a stage that needs nothing but skipped stages is skipped too."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from wfc.runtime import WorkflowBuilder, define_stage, sleep_stage, when
from wfc.runtime.kernel import opening
from wfc.runtime.records import Status
from wfc.testing import make_test_kernel


class Number(BaseModel):
    n: int


async def add_one(ctx: Any) -> Number:
    return Number(n=ctx.input.n + 1)


def _stage(stage_id: str, **extra: Any) -> Any:
    return define_stage(id=stage_id, input=Number, output=Number, execute=add_one, **extra)


def _chain() -> Any:
    return (
        WorkflowBuilder("chain", "a, [b1, b2], c", input=Number)
        .pipe(_stage("a"))
        .parallel([_stage("b1"), _stage("b2", when=when.input.n > 0)])
        .pipe(define_stage(id="c", output=Number, execute=lambda ctx: Number(n=0)))
        .pipe(sleep_stage("nap", duration_ms=1_000))
        .pipe(_stage("d", input_from="a"))
        .build()
    )


def test_a_group_is_plain_when_none_of_its_stages_decides_anything() -> None:
    workflow = _chain()
    assert [workflow.plain_group(n) for n in range(0, 7)] == [
        False,  # no group 0
        True,  # a
        False,  # b2 has a `when`
        True,  # c
        False,  # a sleep
        True,  # d
        False,  # past the last group
    ]


def test_a_stage_is_alone_when_its_group_holds_no_other() -> None:
    workflow = _chain()
    alone = {sid: workflow.alone(sid) for sid in ("a", "b1", "b2", "c", "nap", "d", "x")}
    assert alone == {
        sid: len(workflow.group(workflow.group_of(sid))) == 1 if sid != "x" else False
        for sid in alone
    }
    assert alone == {
        "a": True,
        "b1": False,
        "b2": False,
        "c": True,
        "nap": True,
        "d": True,
        "x": False,
    }


async def test_a_plain_group_opens_without_the_deciders(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = (
        WorkflowBuilder("plain", "a, [b1, b2], c", input=Number)
        .pipe(_stage("a"))
        .parallel([_stage("b1"), _stage("b2")])
        .pipe(define_stage(id="c", output=Number, execute=lambda ctx: Number(n=0)))
        .build()
    )
    tk = make_test_kernel(plain)

    async def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a plain group asked the deciders")

    monkeypatch.setattr(opening, "skip_decisions", refuse)
    monkeypatch.setattr(opening, "wake_times", refuse)
    run = await tk.run("plain", {"n": 0})
    assert run.status is Status.COMPLETED
    stages = await tk.persistence.stages_of_run(run.id)
    assert [(s.stage_id, s.status) for s in stages] == [
        (sid, Status.COMPLETED) for sid in ("a", "b1", "b2", "c")
    ]


async def test_a_plain_group_after_a_skipped_stage_still_skips_what_needs_only_it() -> None:
    skipping = (
        WorkflowBuilder("skipping", "a, b?, c", input=Number)
        .pipe(_stage("a"))
        .pipe(_stage("b", when=when.input.n > 0))
        .pipe(_stage("c"))  # takes b's output: nothing to work on once b is skipped
        .build()
    )
    assert skipping.plain_group(3)
    tk = make_test_kernel(skipping)
    run = await tk.run("skipping", {"n": 0})
    assert run.status is Status.COMPLETED
    stages = await tk.persistence.stages_of_run(run.id)
    assert [(s.stage_id, s.status) for s in stages] == [
        ("a", Status.COMPLETED),
        ("b", Status.SKIPPED),
        ("c", Status.SKIPPED),
    ]
