"""`run.create` and `run.cancel` (spec §4.5, §4.10)."""

from __future__ import annotations

from wfc.errors import WorkflowNotFoundError
from wfc.runtime.commands import RunCancel, RunCancelResult, RunCreate, RunCreateResult
from wfc.runtime.events import WorkflowCancelled, WorkflowCreated
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.records import ACTIVE, TERMINAL, RunRecord, Status

DEFAULT_PRIORITY = 5


async def create_run(deps: Deps, unit: Unit, cmd: RunCreate) -> RunCreateResult:
    """Validate input and config, then store a PENDING run with the parsed values.

    Input and config are refused before anything is written, with every
    failing field named; the run keeps the fingerprint of the plan it was
    validated against.
    """
    workflow = deps.registry.get(cmd.workflow_id)
    if workflow is None:
        raise WorkflowNotFoundError(cmd.workflow_id)
    parsed_input = workflow.validate_input(cmd.input)
    config = workflow.parse_config(cmd.config)
    now = deps.clock.now()
    run = RunRecord(
        id=cmd.run_id or deps.ids.new_id(),
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        plan_fingerprint=workflow.plan.fingerprint,
        status=Status.PENDING,
        input=parsed_input,
        config=config,
        priority=DEFAULT_PRIORITY if cmd.priority is None else cmd.priority,
        metadata=cmd.metadata,
        created_at=now,
        updated_at=now,
    )
    await unit.db.create_run(run)
    unit.emit(WorkflowCreated(timestamp=now, workflow_run_id=run.id, workflow_id=workflow.id))
    return RunCreateResult(workflow_run_id=run.id)


async def cancel_run(deps: Deps, unit: Unit, cmd: RunCancel) -> RunCancelResult:
    """Cancel the run and its open stages; queued jobs are cancelled with it
    (`Unit.with_jobs`).

    A stage executing right now finishes its body, then finds the run
    cancelled and discards its result (the ghost guards of `job.execute`).
    """
    run = await unit.db.get_run(cmd.workflow_run_id)
    if run is None or run.status in TERMINAL:
        return RunCancelResult(cancelled=False)
    now = deps.clock.now()
    await unit.db.update_run(run.id, {"status": Status.CANCELLED, "completed_at": now})
    for row in await unit.db.stages_of_run(run.id):
        if row.status in ACTIVE:
            await unit.db.update_stage(
                row.id, {"status": Status.CANCELLED, "completed_at": now, "next_poll_at": None}
            )

    async def cancel_jobs() -> None:
        await deps.jobs.cancel_by_run(run.id)

    await unit.with_jobs(cancel_jobs)
    unit.emit(WorkflowCancelled(timestamp=now, workflow_run_id=run.id, reason=cmd.reason))
    return RunCancelResult(cancelled=True)
