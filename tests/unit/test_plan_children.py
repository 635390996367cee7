"""The IR of a child-workflow stage: `wfc:child` with `child`, checked like the other
built-ins, and out of a plan's JSON (and fingerprint) where no stage uses it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from wfc.plan import (
    BUILTIN_IMPLEMENTATIONS,
    CHILD_IMPLEMENTATION,
    ChildWorkflow,
    MapSpec,
    Plan,
    PlanStage,
    SleepSpec,
    StageKind,
)

NUMBER = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
    "additionalProperties": False,
}


def _plan(**call: Any) -> Plan:
    stages = (
        PlanStage(id="prep", name="Prep", implementation=".stages.prep:Prep"),
        PlanStage(id="call", name="Call", **call),
    )
    return Plan(
        workflow_id="parent", name="Parent", stages=stages, groups=(("prep",), ("call",))
    ).with_fingerprint()


def test_a_child_stage_round_trips_and_is_a_builtin() -> None:
    plan = _plan(
        implementation=CHILD_IMPLEMENTATION,
        child=ChildWorkflow(workflow_id="doubler"),
        input_schema=NUMBER,
        output_schema=NUMBER,
    )
    assert CHILD_IMPLEMENTATION == "wfc:child" and CHILD_IMPLEMENTATION in BUILTIN_IMPLEMENTATIONS
    text = plan.to_json()
    assert Plan.from_json(text).to_json() == text
    stage = Plan.from_json(text).stage("call")
    assert stage.builtin and stage.child == ChildWorkflow(workflow_id="doubler")
    assert '"child": {\n        "workflow_id": "doubler"\n      }' in text
    assert plan.verify_fingerprint()


def test_a_plan_without_children_keeps_its_json_and_fingerprint() -> None:
    plan = _plan(implementation=".stages.call:Call")
    assert '"child"' not in plan.to_json()
    assert "child" not in plan.content()["stages"][1]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"implementation": CHILD_IMPLEMENTATION}, "needs `sleep`, `wait_for` or `child`"),
        (
            {"implementation": ".stages.call:Call", "child": ChildWorkflow(workflow_id="x")},
            "implementation is 'wfc:child'",
        ),
        (
            {
                "implementation": CHILD_IMPLEMENTATION,
                "child": ChildWorkflow(workflow_id="x"),
                "sleep": SleepSpec(duration_ms=5),
            },
            "one of them",
        ),
        (
            {
                "implementation": CHILD_IMPLEMENTATION,
                "child": ChildWorkflow(workflow_id="x"),
                "kind": StageKind.ASYNC,
            },
            "no async kind",
        ),
        (
            {
                "implementation": CHILD_IMPLEMENTATION,
                "child": ChildWorkflow(workflow_id="x"),
                "map": MapSpec(over=("input", "xs")),
                "input_source": "item",
            },
            "no map",
        ),
    ],
)
def test_a_child_stage_is_checked_like_the_other_builtins(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _plan(**fields)


def test_a_child_names_a_workflow() -> None:
    with pytest.raises(ValidationError):
        ChildWorkflow(workflow_id="")
    with pytest.raises(ValidationError):
        ChildWorkflow.model_validate({"workflow_id": "x", "version": 2})
