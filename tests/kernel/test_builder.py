"""The Python builder: the same Plan shape the compiler makes, and the same checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from tests.conftest import EXAMPLES
from tests.kernel.conftest import Count, Doc, SplitConfig, Words
from wfc.plan import Plan
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.records import Status
from wfc.testing import make_test_kernel


def noop(ctx: Any) -> dict[str, Any]:
    return {}


class Empty(BaseModel):
    pass


def test_builder_and_compiler_agree_on_the_shape_of_a_plan() -> None:
    compiled = Plan.from_json((EXAMPLES / "invoices" / "invoice" / "plan.json").read_text())
    built = (
        WorkflowBuilder("invoice", "Invoice", input=Empty, description=compiled.description)
        .pipe(define_stage(id="subtotal", name="Subtotal", input=Empty, output=Empty, execute=noop))
        .parallel(
            [
                define_stage(id="tax", name="Tax", output=Empty, execute=noop, needs=["subtotal"]),
                define_stage(
                    id="discount", name="Discount", output=Empty, execute=noop, needs=["subtotal"]
                ),
            ]
        )
        .pipe(
            define_stage(
                id="total",
                name="Total",
                output=Empty,
                execute=noop,
                needs=["subtotal", "tax", "discount"],
            )
        )
        .build()
        .plan
    )

    def shape(plan: Plan) -> list[tuple[Any, ...]]:
        return [
            (s.id, s.name, s.kind, s.input_source, s.needs, s.retry, s.poll) for s in plan.stages
        ]

    assert built.groups == compiled.groups
    assert shape(built) == shape(compiled)
    assert built.verify_fingerprint()
    assert Plan.from_json(built.to_json()) == built


def test_config_defaults_come_from_the_config_model() -> None:
    stage = define_stage(id="split", input=Doc, output=Words, config=SplitConfig, execute=noop)
    assert stage.plan.config_defaults == {"lowercase": False, "limit": 100}
    assert json.loads(json.dumps(stage.plan.config_schema))["properties"]["limit"]["minimum"] == 1


def test_dependencies_must_run_earlier() -> None:
    a = define_stage(id="a", output=Count, execute=noop)
    b = define_stage(id="b", output=Count, execute=noop, needs=["a"])
    with pytest.raises(ValueError, match='Stage "b" has missing dependencies: a'):
        WorkflowBuilder("w", "W").pipe(b)
    with pytest.raises(ValueError, match='Stage "b" has missing dependencies: a'):
        WorkflowBuilder("w", "W").parallel([a, b])
    with pytest.raises(ValueError, match='Stage "a" is added twice'):
        WorkflowBuilder("w", "W").pipe(a).pipe(a)


async def test_a_built_workflow_runs() -> None:
    def double(ctx: Any) -> Count:
        return Count(count=ctx.input.count * 2)

    async def start(ctx: Any) -> Count:
        return Count(count=len(ctx.input.text))

    workflow = (
        WorkflowBuilder("double", "Double", input=Doc)
        .pipe(define_stage(id="start", input=Doc, output=Count, execute=start))
        .pipe(define_stage(id="double", input=Count, output=Count, execute=double))
        .build()
    )
    run = await make_test_kernel(workflow).run("double", {"text": "abc"})
    assert (run.status, run.output) == (Status.COMPLETED, {"count": 6})
