"""Adopting runs of an older plan: a deploy that changes a workflow compatibly moves the
runs in flight onto the new plan, instead of leaving them to the old workers.

A worker takes only the runs and jobs of the plans it serves. A run created
with an older plan of a workflow it serves (stored before the worker's own) is
adopted when `wfc diff` finds
nothing in the change that harms a run standing where this one stands (the
stages it has started: `PlanDiff.safe_for`): its plan becomes the worker's, and
so do its queued and parked jobs, in one transaction. A run with a stage
executing on an old worker is left for a later tick, and a run the change
would harm finishes on workers of its own plan; `wfc runs show` says it waits
for one if none is left.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wfc.errors import StaleVersionError
from wfc.plan import Plan
from wfc.runtime.kernel.deps import Deps, atomic
from wfc.runtime.kernel.rows import write_log
from wfc.runtime.records import RunRecord, Status
from wfc.runtime.workflow import Workflow

if TYPE_CHECKING:
    from wfc.compiler.diff import PlanDiff

log = logging.getLogger("wfc.kernel")

ADOPT_PER_TICK = 20


class _Busy(Exception):
    """A job of the run is executing on its old plan's worker: try again later."""


async def adopt_runs(deps: Deps, limit: int = ADOPT_PER_TICK) -> int:
    """Adopt up to `limit` runs of older plans of the served workflows; how many."""
    served = {workflow.id: workflow for workflow in deps.registry.workflows()}
    candidates = await deps.persistence.runs_to_adopt(list(served), deps.registry.plans(), limit)
    adopted = 0
    for run in candidates:
        workflow = served[run.workflow_id]
        diff = await _diff(deps, run.plan_fingerprint, workflow)
        if diff is None:
            continue  # the run's plan was never stored: only its own workers know it
        rows = await deps.persistence.stages_of_run(run.id)
        started = {row.stage_id for row in rows if row.status is not Status.PENDING}
        if not diff.safe_for(started):
            continue
        if await adopt_run(deps, run, workflow):
            adopted += 1
            await write_log(
                deps,
                run.id,
                "INFO",
                f"adopted by plan {workflow.plan.fingerprint} (was {run.plan_fingerprint}): "
                "wfc diff finds the change safe for the stages it has started",
                fields={"from": run.plan_fingerprint, "to": workflow.plan.fingerprint},
            )
    return adopted


async def _diff(deps: Deps, old_fingerprint: str, workflow: Workflow) -> PlanDiff | None:
    """The change from the run's stored plan to the served one; None when the run's plan
    is unknown here or is not the older of the two: a worker of an older plan never takes
    runs of a newer one back."""
    return await plan_change(deps, old_fingerprint, workflow, newer_only=True)


async def plan_change(
    deps: Deps, old_fingerprint: str, workflow: Workflow, *, newer_only: bool = False
) -> PlanDiff | None:
    """`wfc diff` from a stored plan to `workflow`'s (computed once per pair and kind);
    None when the stored plan is unknown (or, `newer_only`, not stored before the other)."""
    key = (old_fingerprint, workflow.plan.fingerprint, newer_only)
    if key in deps.plan_diffs:
        known: PlanDiff | None = deps.plan_diffs[key]
        return known
    stored = await deps.persistence.get_plan(old_fingerprint)
    served = await deps.persistence.get_plan(workflow.plan.fingerprint)
    diff: PlanDiff | None = None
    older = stored is not None and (
        not newer_only or (served is not None and stored.recorded_at < served.recorded_at)
    )
    if stored is not None and older:
        from wfc.compiler.diff import diff_plans  # the compiler's rules, loaded when needed

        diff = diff_plans(Plan.from_json(stored.plan), workflow.plan)
    if stored is not None and served is not None:  # an unknown plan may be stored later
        deps.plan_diffs[key] = diff
    return diff


async def adopt_run(deps: Deps, run: RunRecord, workflow: Workflow) -> bool:
    """Move the run and its waiting jobs to the served plan, unless a stage of it is
    executing now or the run moved since it was read. Where the queue shares the
    transaction the two moves commit together (and on PostgreSQL the moved jobs stay
    locked until then, so an old worker cannot take one meanwhile)."""
    new = workflow.plan.fingerprint
    shared = deps.shared_transactions
    if not shared and not await deps.jobs.repoint(run.id, new):
        return False
    try:
        async with atomic(deps, deps.ids.new_id()) as unit:
            await unit.db.update_run(
                run.id, {"plan_fingerprint": new}, expected_version=run.version
            )
            if shared and not await deps.jobs.repoint(run.id, new):
                raise _Busy()
    except (_Busy, StaleVersionError):
        return False
    log.info("run %s adopted by plan %s", run.id, new)
    return True
