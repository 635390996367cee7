"""A model's JSON schema is made once per class (`wfc.runtime.model_schemas`): building a
workflow asked pydantic for the same few schemas a dozen times, 5–7 ms a small workflow."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from pydantic import BaseModel, create_model

from wfc.runtime import WorkflowBuilder, define_stage, model_schemas
from wfc.runtime.model_schemas import json_schema


class Number(BaseModel):
    n: int


def _add_one(ctx: Any) -> Number:
    return Number(n=ctx.input.n + 1)


def _build(workflow_id: str) -> Any:
    builder = WorkflowBuilder(workflow_id, workflow_id, input=Number)
    for stage_id in ("a", "b", "c"):
        builder = builder.pipe(
            define_stage(id=stage_id, input=Number, output=Number, execute=_add_one)
        )
    return builder.build()


def test_building_a_workflow_again_asks_pydantic_for_no_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _build("once")
    asked: list[str] = []
    made = BaseModel.model_json_schema.__func__  # type: ignore[attr-defined]

    def counted(cls: type[BaseModel], *args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(cls.__name__)
        return made(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(BaseModel, "model_json_schema", classmethod(counted))
    again = _build("once")
    assert asked == []
    assert again.plan == first.plan  # the same plan, fingerprint included


def test_each_caller_gets_a_schema_of_its_own() -> None:
    mine = json_schema(Number)
    mine["properties"]["n"]["type"] = "string"
    assert json_schema(Number) == Number.model_json_schema()


def test_a_model_class_dropped_is_not_kept_alive() -> None:
    made = create_model("Made", x=(int, 0))
    json_schema(made)
    assert made in model_schemas._SCHEMAS
    del made
    gc.collect()
    assert all(cls.__name__ != "Made" for cls in model_schemas._SCHEMAS)
