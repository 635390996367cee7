"""`WorkflowMap.plans` sorts the fingerprints once per set of workflows held: it must still
answer for the workflows held now, however the map was changed."""

from __future__ import annotations

from pydantic import BaseModel

from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow


class _Text(BaseModel):
    text: str


async def _same(ctx: object) -> _Text:
    return _Text(text="x")


def _workflow(workflow_id: str, stage_id: str = "a") -> Workflow:
    stage = define_stage(id=stage_id, input=_Text, output=_Text, execute=_same)
    return WorkflowBuilder(workflow_id, workflow_id, input=_Text).pipe(stage).build()


def test_the_plans_follow_the_workflows_held() -> None:
    one, two = _workflow("one"), _workflow("two", "b")
    registry = WorkflowMap([one])
    assert registry.plans() == [one.plan.fingerprint]
    registry.add(two)
    assert registry.plans() == sorted([one.plan.fingerprint, two.plan.fingerprint])
    changed = _workflow("one", "c")  # a new version swapped in directly, as tests do
    registry._workflows["one"] = changed
    assert registry.plans() == sorted([changed.plan.fingerprint, two.plan.fingerprint])
    del registry._workflows["two"]
    assert registry.plans() == [changed.plan.fingerprint]


def test_a_caller_changing_the_list_changes_nothing_held() -> None:
    registry = WorkflowMap([_workflow("one")])
    plans = registry.plans()
    plans.clear()
    assert registry.plans() != []
