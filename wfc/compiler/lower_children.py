"""Lowering of a child-workflow stage: the stage as any other, then made the built-in
`wfc:child` stage, whose schemas are the child workflow's own."""

from __future__ import annotations

from wfc.compiler import model
from wfc.plan import CHILD_IMPLEMENTATION, ChildWorkflow, PlanStage


def lower_child_stage(stage: PlanStage, child: model.ChildModel) -> PlanStage:
    """`stage` (lowered as a code stage) as the stage that runs `child` as a child run."""
    data = stage.model_dump(exclude={"config_schema", "config_defaults"})
    data.update(
        implementation=CHILD_IMPLEMENTATION,
        child=ChildWorkflow(workflow_id=child.workflow_id),
        input_schema=child.input_schema,
        output_schema=child.output_schema,
    )
    return PlanStage.model_validate(data)
