"""`StageOutputs`, a stage's workflow context read lazily: `require` and `optional` answer
as they did over a dict of parsed outputs, whether a stage has an output is answered
without parsing one, and a read is the reader's own object, the same on every read."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.kernel.helpers import note_outputs_made
from wfc.errors import MissingStageOutputError
from wfc.runtime.kernel.deps import Deps
from wfc.runtime.kernel.rows import load_outputs
from wfc.runtime.records import StageRecord, Status
from wfc.runtime.stage import MemoryBlobs, StageContext
from wfc.runtime.stage_outputs import StageOutputs

NOW = datetime(2026, 12, 7, tzinfo=UTC)

# Stage id → (its row's status, the JSON text of its stored output, or None for none).
STAGES: dict[str, tuple[Status, bytes | None]] = {
    "full": (Status.COMPLETED, b'{"n": 1}'),
    "empty": (Status.COMPLETED, b"{}"),  # falsy, and still an output
    "zero": (Status.COMPLETED, b"0"),
    "null": (Status.COMPLETED, b"null"),  # stored, but None: no output to require
    "nothing": (Status.COMPLETED, None),  # completed without storing one
    "running": (Status.RUNNING, b'{"n": 2}'),  # not completed: its output is not the run's
    "skipped": (Status.SKIPPED, None),
}


async def context() -> StageContext[Any, Any, Any]:
    """The context a stage after `STAGES` gets, made as the kernel makes it."""
    blobs = MemoryBlobs()
    rows = []
    for number, (stage_id, (status, text)) in enumerate(STAGES.items(), start=1):
        key = None if text is None else f"runs/w/r/{stage_id}/output.json"
        if key is not None and text is not None:
            await blobs.put(key, text)
        rows.append(
            StageRecord(
                id=stage_id,
                run_id="r",
                stage_id=stage_id,
                stage_name=stage_id,
                stage_number=number,
                execution_group=number,
                status=status,
                config={},
                created_at=NOW,
                updated_at=NOW,
                output_ref=key,
            )
        )
    outputs = await load_outputs(cast(Deps, SimpleNamespace(blobs=blobs)), rows)
    return StageContext(run_id="r", stage_id="last", input=None, config=None, outputs=outputs)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every object `StageOutputs` makes from an output as stored, in order."""
    seen: list[Any] = []
    note_outputs_made(monkeypatch, seen.append)
    return seen


async def test_require_and_optional_answer_as_over_the_parsed_outputs(made: list[Any]) -> None:
    ctx = await context()
    assert ctx.require("full") == {"n": 1}
    assert ctx.require("empty") == {}
    assert ctx.require("zero") == 0
    assert (ctx.optional("full"), ctx.optional("empty"), ctx.optional("zero")) == ({"n": 1}, {}, 0)
    for missing in ("null", "nothing", "running", "skipped", "unknown"):
        assert ctx.optional(missing) is None
        with pytest.raises(MissingStageOutputError) as raised:
            ctx.require(missing)
        assert raised.value.stage_id == missing
        assert raised.value.available == ["empty", "full", "null", "zero"]
    assert made == [{"n": 1}, {}, 0, None]  # each parsed once, when first read


async def test_asking_which_stages_have_an_output_parses_none(made: list[Any]) -> None:
    ctx = await context()
    with pytest.raises(MissingStageOutputError):
        ctx.require("nothing")  # lists the stages that have one
    outputs = ctx._outputs
    assert "full" in outputs and "running" not in outputs
    assert sorted(outputs) == ["empty", "full", "null", "zero"] and len(outputs) == 4
    assert made == []


def test_a_read_is_the_readers_own_object_and_the_same_on_every_read() -> None:
    stored = {"a": {"words": ["x"]}, "b": b'{"words": ["y"]}'}
    outputs = StageOutputs(stored)
    first = outputs["a"]
    first["words"].append("changed")
    assert outputs["a"] is first and outputs.get("a") is first
    outputs["b"]["words"].append("changed")
    assert (outputs["a"], outputs["b"]) == (
        {"words": ["x", "changed"]},
        {"words": ["y", "changed"]},
    )
    assert stored == {"a": {"words": ["x"]}, "b": b'{"words": ["y"]}'}  # as stored
    again = StageOutputs(dict(outputs.held))  # another reader, as a warm start makes one
    assert again["a"] == {"words": ["x"]} and again["b"] == {"words": ["y"]}


def test_a_dict_of_outputs_is_copied_as_the_context_is_made() -> None:
    """A test or a tool that builds a context from its own dict may change the dict after:
    the context keeps what it was given (only the kernel's read-only `StageOutputs` is
    kept as it is, to stay lazy)."""
    outputs: dict[str, Any] = {"a": {"n": 1}}
    ctx: StageContext[Any, Any, str] = StageContext(
        run_id="r", stage_id="b", input=None, config=None, outputs=outputs
    )
    outputs["a"] = {"n": 2}
    outputs["later"] = {"n": 3}
    assert ctx.require("a") == {"n": 1}
    assert ctx.optional("later") is None
