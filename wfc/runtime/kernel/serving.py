"""A run's workflow where the process may not serve it: the one served for the run's plan,
else the plan stored when the run was created; and a registry holding it, for the
transition of a run moved on by a process that does not serve its workflow (a signal sent
from `wfc runs signal`, a child run finished by a worker serving only the child)."""

from __future__ import annotations

from wfc.plan import Plan
from wfc.runtime.ports import Persistence
from wfc.runtime.records import RunRecord
from wfc.runtime.registry import WorkflowRegistry
from wfc.runtime.workflow import Workflow


async def run_workflow(
    registry: WorkflowRegistry, db: Persistence, run: RunRecord
) -> Workflow | None:
    """The run's workflow: the one served here for its plan, else its stored plan's (None
    when neither is there)."""
    served = registry.get(run.workflow_id)
    if served is not None and served.plan.fingerprint == run.plan_fingerprint:
        return served
    stored = await db.get_plan(run.plan_fingerprint)
    return None if stored is None else Workflow.of_plan(Plan.from_json(stored.plan))


class Serving:
    """`registry` with `workflow` in it (the stored plan of a run being moved on)."""

    def __init__(self, registry: WorkflowRegistry, workflow: Workflow) -> None:
        self._registry = registry
        self._workflow = workflow

    def get(self, workflow_id: str) -> Workflow | None:
        if workflow_id == self._workflow.id:
            return self._workflow
        return self._registry.get(workflow_id)

    def plans(self) -> list[str]:
        return self._registry.plans()

    def workflows(self) -> list[Workflow]:
        return self._registry.workflows()
