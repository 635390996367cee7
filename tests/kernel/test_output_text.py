"""A model a stage returns is validated from its JSON text and stored as the validated
model's text, written once; the next stage's input is validated from that stored text.
What is refused, and with which error, is what the dump's path refused (`invoke`), on
memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from tests.databases import kernel_on_storage
from tests.kernel.conftest import Count, Script, Words
from tests.kernel.helpers import note_outputs_made, run_of, stage_of, start, step
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.kernel import rows
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel


class _Loose(BaseModel):
    """Not `split`'s output model: validated into it, as any other model is."""

    model_config = ConfigDict(ser_json_inf_nan="constants")
    words: Any


async def test_a_model_changed_after_it_was_built_is_refused_as_before(
    tk: TestKernel, script: Script
) -> None:
    """Its text validates nowhere (a number where a list goes): the refusal is the dump's
    own, worded with Python's types ("a valid list", where the text's says "array")."""
    changed = Words(words=["a"])
    changed.words = 7  # type: ignore[assignment]  # no `validate_assignment`
    script.then("split", changed)
    run_id = await start(tk, "linear")
    with pytest.warns(UserWarning):  # pydantic's serializer sees the int
        outcome = await step(tk)
    assert (
        outcome.error
        == "Stage split returned an invalid output: words: Input should be a valid list"
    )
    assert (await stage_of(tk, run_id, "split")).status is Status.PENDING  # retried


async def test_what_is_stored_is_the_validated_models_text(tk: TestKernel, script: Script) -> None:
    """Another model's output, validated into the stage's model: the stored text is the
    validated model's, not the returned one's (a tuple becomes a list), and the next stage
    reads it."""
    script.then("split", _Loose(words=("x", "y")))
    run_id = await start(tk, "linear")
    assert (await step(tk)).outcome == "completed"
    row = await stage_of(tk, run_id, "split")
    assert await tk.blobs.get(row.output_ref or "") == b'{"words":["x","y"]}'
    assert (await step(tk)).outcome == "completed"
    count = await stage_of(tk, run_id, "count")
    assert await tk.blobs.get(count.output_ref or "") == b'{"count":2}'


@pytest.mark.parametrize(
    ("words", "problem"),
    [(["nul\x00byte"], "U+0000"), ([float("nan")], "nan (JSON has no such number)")],
    ids=["nul", "nan"],
)
async def test_an_output_no_database_can_store_is_refused_on_every_store(
    tk: TestKernel, script: Script, words: list[Any], problem: str
) -> None:
    """A NUL, or a NaN its model writes as a constant: the text is not handed on, the data
    is walked, and the attempt fails for good with the walk's error."""
    script.then("split", _Loose(words=words) if problem.startswith("nan") else Words(words=words))
    if problem.startswith("nan"):  # `split`'s model holds strings: a NaN needs a looser one
        tk.kernel.deps.registry.get("linear").implementations["split"].output_model = _Loose  # type: ignore[union-attr]
    run_id = await start(tk, "linear")
    outcome = await step(tk)
    assert outcome.outcome == "failed" and not outcome.retried
    row = await stage_of(tk, run_id, "split")
    assert row.error is not None and "UnstorableOutput" in row.error and problem in row.error


async def test_a_produced_outputs_text_is_stored_without_encoding_it_again(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text written as the output was checked is the text stored."""

    def encoded_again(output: Any) -> bytes:
        raise AssertionError(f"encoded again: {output!r}")

    monkeypatch.setattr(rows, "output_json", encoded_again)
    run_id = await start(tk, "linear")
    for _ in range(3):
        assert (await step(tk)).outcome == "completed"
    run = await run_of(tk, run_id)
    assert run.status is Status.COMPLETED
    count = await stage_of(tk, run_id, "count")
    assert await tk.blobs.get(count.output_ref or "") == Count(count=4).model_dump_json().encode()


class _OwnDump(BaseModel):
    """A model whose class writes its own dump: that dump is the output, as it was."""

    words: list[str]

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return {"words": ["its", "own"]}


async def test_a_model_that_dumps_itself_is_validated_from_its_own_dump(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", _OwnDump(words=["x"]))
    run_id = await start(tk, "linear")
    assert (await step(tk)).outcome == "completed"
    row = await stage_of(tk, run_id, "split")
    assert await tk.blobs.get(row.output_ref or "") == b'{"words":["its","own"]}'


class _Tagged(BaseModel):
    stage: str
    words: list[str]


def _needing() -> Workflow:
    """a → b → c, `c` reading `a`'s output through its typed `needs` (`ctx.dependency`)."""

    def made_by(stage_id: str) -> Any:
        def run(ctx: Any) -> _Tagged:
            if stage_id == "c":
                first = ctx.dependency("a", _Tagged)
                first.words.append("changed")  # the body's own model: no other reader's
                assert ctx.dependency("a", _Tagged).words == ["from a"]
            return _Tagged(stage=stage_id, words=[f"from {stage_id}"])

        return run

    return (
        WorkflowBuilder("needing", "A typed dependency", input=_Tagged)
        .pipe(define_stage(id="a", input=_Tagged, output=_Tagged, execute=made_by("a")))
        .pipe(define_stage(id="b", input=_Tagged, output=_Tagged, execute=made_by("b")))
        .pipe(define_stage(id="c", output=_Tagged, execute=made_by("c"), needs=["a"]))
        .build()
    )


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgres"])
async def test_a_typed_dependency_is_validated_from_the_stored_text(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither `b`'s input nor `c`'s two reads of `a` parse `a`'s output into a dict: only
    the run's output (`c`'s) is parsed. Each read is a model of its own."""
    made: Counter[str] = Counter()
    note_outputs_made(monkeypatch, lambda value: made.update([value["stage"]]))
    async with kernel_on_storage(store, [_needing()], tmp_path) as tk:
        run = await tk.run("needing", {"stage": "input", "words": []})
    assert run.status is Status.COMPLETED
    assert run.output == {"stage": "c", "words": ["from c"]}
    assert made == {"c": 1}


class _Secretive(BaseModel):
    """A stage's own output model that leaves a field out of its dump: what is stored is
    the dump, never the field."""

    words: list[str]
    secret: str = "s3cret"

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        return {k: v for k, v in super().model_dump(**kwargs).items() if k != "secret"}


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_an_output_model_that_dumps_itself_is_stored_as_its_dump(
    store: str, tmp_path: Path
) -> None:
    workflow = (
        WorkflowBuilder("secretive", "An output model with its own dump", input=_Tagged)
        .pipe(
            define_stage(
                id="a", input=_Tagged, output=_Secretive,
                execute=lambda ctx: _Secretive(words=ctx.input.words),
            )
        )
        .build()
    )  # fmt: skip
    async with kernel_on_storage(store, [workflow], tmp_path) as tk:
        run = await tk.run("secretive", {"stage": "input", "words": ["w"]})
        row = await stage_of(tk, run.id, "a")
        stored = await tk.blobs.get(row.output_ref or "")
    assert run.status is Status.COMPLETED
    assert run.output == {"words": ["w"]}
    assert stored is not None and b"s3cret" not in stored


class _Dated(BaseModel):
    when: str


class _EitherDay(BaseModel):
    when: date | str


class _Kind(BaseModel):
    kind: str


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_an_input_with_a_union_gets_the_member_its_value_gives(
    store: str, tmp_path: Path
) -> None:
    """`a` hands on a date as a string; `b` takes `date | str`, whose member JSON text
    would choose otherwise (a `date`): `b` gets the `str` it always got."""
    workflow = (
        WorkflowBuilder("either", "A union in an input", input=_Dated)
        .pipe(define_stage(id="a", input=_Dated, output=_Dated, execute=lambda ctx: ctx.input))
        .pipe(
            define_stage(
                id="b", input=_EitherDay, output=_Kind,
                execute=lambda ctx: _Kind(kind=type(ctx.input.when).__name__),
            )
        )
        .build()
    )  # fmt: skip
    async with kernel_on_storage(store, [workflow], tmp_path) as tk:
        run = await tk.run("either", {"when": "2026-01-31"})
    assert run.output == {"kind": "str"}
