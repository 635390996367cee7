"""`wfc runs migrate`: an operator moves runs in flight onto a new plan, now.

Workers adopt runs of older plans on their own when `wfc diff` finds the
change safe for where each run stands (`wfc.runtime.kernel.adopt`). Migrating
is the explicit form, for the runs they leave: a run is moved when the change
is safe for the stages it has started, and refused otherwise, saying which
changes break which stages. With a stage to restart from, the run keeps the
stages before that stage's group (the change must be safe for those), drops
the rest, and runs on from there on the new plan, as a rerun would.

A run is never moved while one of its stages is executing: that execution
belongs to its old plan. Before restarting, the run's waiting jobs are first
parked on a plan no worker serves (so none is taken while they are
cancelled), then cancelled; the restart queues new ones on the new plan.
"""

from __future__ import annotations

import logging

from wfc.errors import (
    MigrationRefusedError,
    RecordNotFoundError,
    StageNotFoundError,
    StaleVersionError,
)
from wfc.runtime.kernel.adopt import adopt_run, plan_change
from wfc.runtime.kernel.deps import Deps, atomic
from wfc.runtime.kernel.rerun import restart_from
from wfc.runtime.kernel.rows import write_log
from wfc.runtime.records import TERMINAL, RunRecord, StageRecord, Status
from wfc.runtime.workflow import Workflow

log = logging.getLogger("wfc.kernel")

PARKED = "migrating"
"""The plan a migrating run's waiting jobs are parked on while they are cancelled."""


async def migrate_run(
    deps: Deps, run_id: str, workflow: Workflow, from_stage: str | None = None
) -> list[str]:
    """Move the run onto `workflow`'s plan (restarting from `from_stage`'s group, when
    given); the stages it dropped. `MigrationRefusedError` says why it cannot."""
    run = await deps.persistence.get_run(run_id)
    if run is None:
        raise RecordNotFoundError("WorkflowRun", run_id)
    _refuse_unless_movable(run, workflow)
    rows = await deps.persistence.stages_of_run(run.id)
    if from_stage is None:
        await _move(deps, run, workflow, rows)
        return []
    return await _restart(deps, run, workflow, rows, from_stage)


def _refuse_unless_movable(run: RunRecord, workflow: Workflow) -> None:
    if run.workflow_id != workflow.id:
        raise MigrationRefusedError(run.id, f"it is a run of {run.workflow_id}, not {workflow.id}")
    if run.status in TERMINAL:
        raise MigrationRefusedError(
            run.id,
            f"it is {run.status.value}; `wfc runs rerun {run.id} --from STAGE` runs it "
            "again on the new plan",
        )


async def _move(deps: Deps, run: RunRecord, workflow: Workflow, rows: list[StageRecord]) -> None:
    """Move the run as it stands, when the change is safe for the stages it started."""
    new = workflow.plan.fingerprint
    if run.plan_fingerprint == new:
        return
    started = {row.stage_id for row in rows if row.status is not Status.PENDING}
    await _refuse_if_breaking(deps, run, workflow, started, "it has started")
    if not await adopt_run(deps, run, workflow):
        raise MigrationRefusedError(
            run.id, "a stage of it is executing on its old plan now: try again when it ends"
        )
    await _log_move(deps, run, new, "wfc runs migrate")


async def _restart(
    deps: Deps, run: RunRecord, workflow: Workflow, rows: list[StageRecord], from_stage: str
) -> list[str]:
    """Keep the stages before `from_stage`'s group, run on from there on the new plan."""
    if workflow.stage(from_stage) is None:
        raise StageNotFoundError(from_stage, workflow.id)
    group = workflow.group_of(from_stage)
    reached = max((row.execution_group for row in rows), default=0)
    if group > max(reached, 1):
        raise MigrationRefusedError(
            run.id, f"it has not reached stage {from_stage}: migrate it without --from"
        )
    kept = {
        row.stage_id
        for row in rows
        if row.execution_group < group and row.status is not Status.PENDING
    }
    await _refuse_if_breaking(deps, run, workflow, kept, "it would keep")
    if not await deps.jobs.repoint(run.id, PARKED):
        raise MigrationRefusedError(
            run.id, "a stage of it is executing on its old plan now: try again when it ends"
        )
    await deps.jobs.cancel_by_run(run.id)
    async with atomic(deps, deps.ids.new_id()) as unit:
        fresh = await unit.db.get_run(run.id)
        if fresh is None or fresh.version != run.version:
            raise MigrationRefusedError(run.id, "it moved on while being migrated: try again")
        try:
            deleted = await restart_from(deps, unit, fresh, workflow, group, rows)
        except StaleVersionError:
            raise MigrationRefusedError(
                run.id, "it moved on while being migrated: try again"
            ) from None
    await _log_move(deps, run, workflow.plan.fingerprint, f"wfc runs migrate --from {from_stage}")
    return deleted


async def _refuse_if_breaking(
    deps: Deps, run: RunRecord, workflow: Workflow, stages: set[str], which: str
) -> None:
    """Refuse unless the change from the run's plan is safe for `stages`."""
    if not stages or run.plan_fingerprint == workflow.plan.fingerprint:
        return
    diff = await plan_change(deps, run.plan_fingerprint, workflow)
    if diff is None:
        raise MigrationRefusedError(
            run.id,
            f"its plan {run.plan_fingerprint} is not stored, so the change cannot be checked: "
            f"add --from {workflow.group(1)[0]} to run it whole on the new plan",
        )
    breaking = diff.breaking_for(stages)
    if breaking:
        reasons = "; ".join(change.message for change in breaking[:3])
        raise MigrationRefusedError(
            run.id,
            f"the change breaks stages {which} ({reasons}): add --from STAGE to run again "
            "from a stage before them",
        )


async def _log_move(deps: Deps, run: RunRecord, new: str, how: str) -> None:
    log.info("run %s migrated to plan %s", run.id, new)
    await write_log(
        deps,
        run.id,
        "INFO",
        f"migrated to plan {new} (was {run.plan_fingerprint}) by {how}",
        fields={"from": run.plan_fingerprint, "to": new},
    )
