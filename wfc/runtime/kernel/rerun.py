"""`run.rerunFrom`: run a finished run again from one stage's group onward."""

from __future__ import annotations

from wfc.errors import (
    RecordNotFoundError,
    RerunRefusedError,
    StageNotFoundError,
    StaleVersionError,
    WorkflowNotFoundError,
)
from wfc.runtime.commands import RunRerunFrom, RunRerunFromResult
from wfc.runtime.events import WorkflowStarted
from wfc.runtime.kernel.adopt import plan_change
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.kernel.mapping import is_map_list, rerun_unfinished
from wfc.runtime.kernel.rows import stage_prefix
from wfc.runtime.kernel.transition import advance
from wfc.runtime.records import RunRecord, StageRecord, Status
from wfc.runtime.workflow import Workflow


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
    kept_map = await _map_to_resume(unit, run.id, workflow, cmd, rows)
    await _refuse_unless_plan_fits(deps, run, workflow, rows, group, kept_map)
    try:
        deleted = await restart_from(deps, unit, run, workflow, group, rows, kept_map)
    except StaleVersionError:
        raise RerunRefusedError(run.id, "it moved on while being rerun: try again") from None
    return RunRerunFromResult(
        workflow_run_id=run.id, from_stage_id=cmd.from_stage_id, deleted_stages=deleted
    )


async def restart_from(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    workflow: Workflow,
    group: int,
    rows: list[StageRecord],
    kept_map: str | None = None,
) -> list[str]:
    """Delete the rows of `group` onward (but the completed items of `kept_map`), put the
    run on `workflow`'s plan and RUNNING, and queue `group` again; the stages deleted.
    `StaleVersionError` (nothing written) when the run is no longer at `run.version`."""
    doomed = [
        row
        for row in rows
        if row.execution_group >= group
        and not (kept_map and row.execution_group == group and row.status is Status.COMPLETED)
        and row.stage_id != kept_map
    ]
    now = deps.clock.now()
    # The run's row first, at the version read (`StaleVersionError` if it moved), then
    # its stages and items: the order every writer of a run takes them in. Deleting the
    # rows first deadlocked on PostgreSQL with a writer that held the run and wanted one.
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
            # The rerun runs on this plan (`_refuse_unless_plan_fits` checked that it may).
            "plan_fingerprint": workflow.plan.fingerprint,
        },
        expected_version=run.version,
    )
    await unit.db.delete_stages([row.id for row in doomed])
    mapped = [row.stage_id for row in doomed if row.items_total]
    if mapped:
        await unit.db.delete_items(run.id, mapped)
    generation = max((row.generation for row in doomed), default=-1) + 1

    async def delete_blobs() -> None:
        for row in doomed:
            try:
                for key in await deps.blobs.list(stage_prefix(run, row.stage_id)):
                    if is_map_list(key):
                        continue  # a reopened map stores its list again under these keys
                    await deps.blobs.delete(key)
            except Exception:  # an orphan blob is harmless; the rerun goes on
                continue

    # Registered first so the stale outputs are gone before the new jobs can run.
    unit.after_commit(delete_blobs)
    unit.emit(WorkflowStarted(timestamp=now, workflow_run_id=run.id))
    kept = [row for row in rows if row.execution_group < group]
    if kept_map is not None:
        row = next(row for row in rows if row.stage_id == kept_map)
        specs = await rerun_unfinished(deps, unit, run, workflow, row)

        async def enqueue() -> None:
            await deps.jobs.enqueue(specs)

        await unit.with_jobs(enqueue)
    await advance(deps, unit, run, workflow, group, rows=kept, generation=generation)
    return [row.stage_id for row in doomed]


async def _map_to_resume(
    unit: Unit, run_id: str, workflow: Workflow, cmd: RunRerunFrom, rows: list[StageRecord]
) -> str | None:
    """With `only_failed_items`, the mapped stage whose unfinished items run again (its
    row and its completed items are kept); refused for a stage that is not mapped or has
    no such item."""
    if not cmd.only_failed_items:
        return None
    stage = workflow.stage(cmd.from_stage_id)
    row = next((row for row in rows if row.stage_id == cmd.from_stage_id), None)
    if stage is None or stage.map is None:
        raise RerunRefusedError(
            run_id, f"stage {cmd.from_stage_id} is not mapped: it has no items to rerun"
        )
    if row is None or row.status is Status.SKIPPED:
        raise RerunRefusedError(run_id, f"stage {cmd.from_stage_id} has not run")
    done = await unit.db.items_of_stage(run_id, row.stage_id, statuses=[Status.COMPLETED])
    if len(done) == row.items_total:
        raise RerunRefusedError(
            run_id,
            f"every item of stage {cmd.from_stage_id} completed; rerun from it without "
            "only the failed items to run them all again",
        )
    return row.stage_id


async def _refuse_unless_plan_fits(
    deps: Deps,
    run: RunRecord,
    workflow: Workflow,
    rows: list[StageRecord],
    group: int,
    kept_map: str | None,
) -> None:
    """A run created with another plan is rerun on this one: from the first group nothing
    is kept, so it always may; otherwise the stages it keeps must be safe on this plan
    (`wfc diff`), and the refusal says which changes break them."""
    if workflow.plan.fingerprint == run.plan_fingerprint:
        return
    kept = {
        row.stage_id
        for row in rows
        if (row.execution_group < group or row.stage_id == kept_map)
        and row.status is not Status.PENDING
    }
    if not kept:
        return
    diff = await plan_change(deps, run.plan_fingerprint, workflow)
    first = workflow.group(1)[0]
    if diff is None:
        raise RerunRefusedError(
            run.id,
            f"it was created with plan {run.plan_fingerprint}, which is not stored here, and "
            f"keeps stages {', '.join(sorted(kept))}: rerun it from {first} to run it whole on "
            "this plan",
        )
    breaking = diff.breaking_for(kept)
    if breaking:
        reasons = "; ".join(change.message for change in breaking[:3])
        raise RerunRefusedError(
            run.id,
            f"this plan's changes break stages it keeps ({reasons}): rerun it from {first} "
            "to run it whole on this plan",
        )
