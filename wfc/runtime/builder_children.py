"""Child-workflow stages in plain Python: the builder's `stage x runs <workflow>`.

```python
enrich_wf = WorkflowBuilder("enrich_customer", "Enrich", input=Customer).pipe(lookup).build()
enrich = child_stage(id="enrich", workflow=enrich_wf, retry=RetryPolicy(max_attempts=3))
onboarding = WorkflowBuilder("onboarding", "Onboarding", input=Signup).pipe(prep).pipe(enrich)
```

The stage's input (the previous group's output, or `input_from`'s) is the child run's
input and its output the child run's output, so its schemas are the child plan's. Serve
both workflows from the same worker (`Registry` / `wfc worker --plan … --plan …`).
"""

from __future__ import annotations

from collections.abc import Iterable

from wfc.plan import (
    CHILD_IMPLEMENTATION,
    ChildWorkflow,
    Condition,
    InputSource,
    PlanStage,
    RetryPolicy,
)
from wfc.runtime import builder_fleet
from wfc.runtime.builder import StageDefinition
from wfc.runtime.workflow import Workflow


def child_stage(
    *,
    id: str,
    workflow: Workflow,
    name: str | None = None,
    description: str | None = None,
    input_from: str | None = None,
    needs: Iterable[str] = (),
    optional_needs: Iterable[str] = (),
    when: Condition | None = None,
    retry: RetryPolicy | None = None,
    priority: int | None = None,
    queue: str | None = None,
) -> StageDefinition:
    """A stage that runs `workflow` as a child run (`retry` is the child-run retry policy)."""
    required, optional = tuple(needs), tuple(optional_needs)
    child = workflow.plan
    plan = PlanStage(
        id=id,
        name=name or id,
        description=description,
        input_source=InputSource.STAGE if input_from is not None else InputSource.FLOW,
        input_from=input_from,
        input_schema=child.input_schema,
        output_schema=child.output_schema,
        needs=(*required, *(dep for dep in optional if dep not in required)),
        optional_needs=optional,
        when=when,
        retry=retry or RetryPolicy(),
        priority=priority,
        queue=builder_fleet.queue_name(f'Stage "{id}"', queue),
        implementation=CHILD_IMPLEMENTATION,
        child=ChildWorkflow(workflow_id=child.workflow_id),
    )
    return StageDefinition(plan=plan, implementation=None)
