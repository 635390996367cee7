"""The Plan IR of a child-workflow stage: a stage that runs another workflow as a child run.

Kept beside `wfc.plan` (which re-exports it), like the sleeps and signal waits of
`wfc.plan_waits`. A child stage is a `PlanStage` whose `implementation` is `wfc:child`
and which carries a `ChildWorkflow`; no user class implements it. Its input (from
`input_source`, as any stage's) is the child run's input, so its `input_schema` is the
child workflow's input schema, and its output is the child run's output, so its
`output_schema` is the child workflow's output schema; the compiler checks both across
the two plans (a plan on its own can only be checked for shape).

The child workflow must be served by the same worker as the parent (the same
registry): the parent's kernel creates the child run as `run.create` does, and a
workflow it does not serve fails the stage, not retried (`ChildWorkflowNotServed`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

CHILD_IMPLEMENTATION = "wfc:child"
"""The `implementation` of a built-in child-workflow stage (`PlanStage.child`): no user class."""

MAX_CHILD_DEPTH = 20
"""How deep runs may nest (a run started by a stage is one deeper than its parent): a
workflow that, at run time, starts itself again through its children fails at this depth
with `ChildDepthExceeded` rather than looping forever."""


class ChildWorkflow(BaseModel):
    """A built-in stage that runs the workflow `workflow_id` as a child run, with the stage's
    input as the run's input, waits for it without holding a worker, and outputs the child
    run's output. A failed child is retried under the stage's `retry` policy (a new child
    run per attempt); a cancelled one fails the stage at once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow_id: str = Field(min_length=1, max_length=200)
