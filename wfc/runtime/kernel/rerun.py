"""`run.rerunFrom` (spec §4.11): run a finished run again from one stage's group onward."""

from __future__ import annotations

from wfc.errors import (
    RecordNotFoundError,
    RerunRefusedError,
    StageNotFoundError,
    WorkflowNotFoundError,
)
from wfc.runtime.commands import RunRerunFrom, RunRerunFromResult
from wfc.runtime.events import WorkflowStarted
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.kernel.rows import stage_prefix
from wfc.runtime.kernel.transition import advance
from wfc.runtime.records import Status


async def rerun_from(deps: Deps, unit: Unit, cmd: RunRerunFrom) -> RunRerunFromResult:
    """Delete the target group and everything after it, then queue the target group again.

    Earlier groups keep their rows and outputs, so the rerun sees them. The
    recreated rows carry the next rerun generation. Blobs of the deleted
    stages are removed after the commit, so a rolled-back rerun loses nothing.
    """
    run = await unit.db.get_run(cmd.workflow_run_id)
    if run is None:
        raise RecordNotFoundError("WorkflowRun", cmd.workflow_run_id)
    if run.status not in (Status.COMPLETED, Status.FAILED):
        raise RerunRefusedError(
            run.id, f"it is {run.status.value}; only COMPLETED or FAILED runs can be rerun"
        )
    workflow = deps.registry.get(run.workflow_id)
    if workflow is None:
        raise WorkflowNotFoundError(run.workflow_id)
    if workflow.stage(cmd.from_stage_id) is None:
        raise StageNotFoundError(cmd.from_stage_id, run.workflow_id)
    group = workflow.group_of(cmd.from_stage_id)
    rows = await unit.db.stages_of_run(run.id)
    if group > 1 and not any(row.execution_group < group for row in rows):
        raise RerunRefusedError(
            run.id,
            f"cannot rerun from stage {cmd.from_stage_id}: previous stages have not been executed",
        )
    doomed = [row for row in rows if row.execution_group >= group]
    await unit.db.delete_stages([row.id for row in doomed])
    now = deps.clock.now()
    run = await unit.db.update_run(
        run.id,
        {
            "status": Status.RUNNING,
            "started_at": now,
            "completed_at": None,
            "duration_ms": None,
            "output": None,
            "error": None,
            "total_cost": 0.0,
            "total_tokens": 0,
        },
    )
    generation = max((row.generation for row in doomed), default=-1) + 1

    async def delete_blobs() -> None:
        for row in doomed:
            try:
                for key in await deps.blobs.list(stage_prefix(run, row.stage_id)):
                    await deps.blobs.delete(key)
            except Exception:  # an orphan blob is harmless; the rerun goes on
                continue

    # Registered first so the stale outputs are gone before the new jobs can run.
    unit.after_commit(delete_blobs)
    unit.emit(WorkflowStarted(timestamp=now, workflow_run_id=run.id))
    kept = [row for row in rows if row.execution_group < group]
    await advance(deps, unit, run, workflow, group, rows=kept, generation=generation)
    return RunRerunFromResult(
        workflow_run_id=run.id,
        from_stage_id=cmd.from_stage_id,
        deleted_stages=[row.stage_id for row in doomed],
    )
