"""Keeping the plans runs are created with, once per process, so a run's plan can be shown
after no worker serves it any more."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from wfc.runtime.kernel.deps import Deps
from wfc.runtime.ports import Persistence
from wfc.runtime.records import PlanRecord
from wfc.runtime.workflow import Workflow


def plan_record(workflow: Workflow, now: datetime) -> PlanRecord:
    """What is kept of a workflow's plan."""
    plan = workflow.plan
    return PlanRecord(
        fingerprint=plan.fingerprint,
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        plan=workflow.plan_json,
        recorded_at=now,
    )


def unrecorded(deps: Deps, workflows: Sequence[Workflow]) -> list[PlanRecord]:
    """The plans of `workflows` this process has not stored yet."""
    now = deps.clock.now()
    return [
        plan_record(workflow, now)
        for workflow in workflows
        if workflow.plan.fingerprint not in deps.recorded_plans
    ]


async def record_once(deps: Deps, db: Persistence, workflows: Sequence[Workflow]) -> None:
    """Store the plans of `workflows` not stored by this process yet (in `db`'s transaction
    when it is one: they count as stored only once it commits, see `stored`)."""
    fresh = unrecorded(deps, workflows)
    if fresh:
        await db.record_plans(fresh)


def stored(deps: Deps, workflows: Sequence[Workflow]) -> None:
    """Remember that the plans of `workflows` are stored."""
    deps.recorded_plans.update(workflow.plan.fingerprint for workflow in workflows)


async def keep_plan(deps: Deps, workflow_id: str) -> None:
    """Store the plan runs of `workflow_id` are created with, the first time this process
    creates one: a statement of its own, before the create's transaction, which stays one
    statement (and SQLite's write lock is not taken for it)."""
    workflow = deps.registry.get(workflow_id)
    if workflow is None or workflow.plan.fingerprint in deps.recorded_plans:
        return
    await record_once(deps, deps.persistence, [workflow])
    stored(deps, [workflow])
