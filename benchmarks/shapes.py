"""The benchmark shapes, built in Python: `seq3` (a → b → c), `fan` (a → [b1..b4] → c),
and for the scaling table `seqN` (N stages in a row) and `fanN` (a → [b1..bN] → c).

Stages are trivial (`async def`, add one) so what is measured is the runtime.
"""

from __future__ import annotations

from pydantic import BaseModel

from wfc.runtime import StageDefinition, WorkflowBuilder, define_stage
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow

INPUT = {"n": 0}  # every benchmark run's input


class Number(BaseModel):
    n: int


async def add_one(ctx: object) -> Number:
    value = getattr(ctx, "input", None)
    return Number(n=(value.n if isinstance(value, Number) else 0) + 1)


def _stage(stage_id: str, *, input_model: type[BaseModel] | None = Number) -> StageDefinition:
    return define_stage(id=stage_id, input=input_model, output=Number, execute=add_one)


def sequence(length: int, workflow_id: str | None = None) -> Workflow:
    """`length` stages in a row, each taking the one before's output."""
    builder = WorkflowBuilder(workflow_id or f"seq{length}", f"{length} in a row", input=Number)
    for n in range(length):
        builder = builder.pipe(_stage(f"s{n}" if length != 3 else "abc"[n]))
    return builder.build()


def fan(width: int, workflow_id: str | None = None) -> Workflow:
    """a → [b1..b`width`] → c: one stage, `width` in parallel, one that takes them all."""
    return (
        WorkflowBuilder(workflow_id or f"fan{width}", f"One, {width}, one", input=Number)
        .pipe(_stage("a"))
        .parallel([_stage(f"b{i}") for i in range(1, width + 1)])
        .pipe(_stage("c", input_model=None))
        .build()
    )


SCALING_SEQUENCES = (3, 10, 30)
SCALING_FANS = (4, 16, 64)


def stages_of(shape: str) -> int:
    """How many stages one run of `shape` executes."""
    if shape.startswith("fan"):
        return (int(shape[3:]) if shape != "fan" else 4) + 2
    return int(shape[3:])


def workflows() -> WorkflowMap:
    """`seq3` and `fan` (the main table's), and the scaling table's shapes."""
    shapes = [sequence(3), fan(4, "fan")]
    shapes += [sequence(n) for n in SCALING_SEQUENCES if n != 3]
    shapes += [fan(n) for n in SCALING_FANS]
    return WorkflowMap(shapes)
