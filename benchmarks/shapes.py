"""The two benchmark shapes, built in Python: `seq3` (a → b → c) and `fan` (a → [b1..b4] → c).

Stages are trivial (`async def`, add one) so what is measured is the runtime.
"""

from __future__ import annotations

from pydantic import BaseModel

from wfc.runtime import StageDefinition, WorkflowBuilder, define_stage
from wfc.runtime.registry import WorkflowMap


class Number(BaseModel):
    n: int


async def add_one(ctx: object) -> Number:
    value = getattr(ctx, "input", None)
    return Number(n=(value.n if isinstance(value, Number) else 0) + 1)


def _stage(stage_id: str, *, input_model: type[BaseModel] | None = Number) -> StageDefinition:
    return define_stage(id=stage_id, input=input_model, output=Number, execute=add_one)


def workflows() -> WorkflowMap:
    seq3 = (
        WorkflowBuilder("seq3", "Three in a row", input=Number)
        .pipe(_stage("a"))
        .pipe(_stage("b"))
        .pipe(_stage("c"))
        .build()
    )
    fan = (
        WorkflowBuilder("fan", "One, four, one", input=Number)
        .pipe(_stage("a"))
        .parallel([_stage(f"b{i}") for i in range(1, 5)])
        .pipe(_stage("c", input_model=None))
        .build()
    )
    return WorkflowMap([seq3, fan])
