"""`run.create` and `run.cancel` (spec §4.5, §4.10)."""

from __future__ import annotations

from datetime import datetime

from wfc.errors import (
    IdempotencyKeyReusedError,
    InvalidRunInputError,
    StaleVersionError,
    WorkflowNotFoundError,
)
from wfc.observability import observer
from wfc.runtime.commands import RunCancel, RunCancelResult, RunCreate, RunCreateResult
from wfc.runtime.events import WorkflowCancelled, WorkflowCreated
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.records import ACTIVE, TERMINAL, RunChanges, RunRecord, Status
from wfc.runtime.storable import unstorable_part

DEFAULT_PRIORITY = 5
_CANCEL_TRIES = 3  # reads of a run whose transitions keep moving it under the cancel


async def create_run(
    deps: Deps, unit: Unit, cmd: RunCreate, *, parent: tuple[str, str] | None = None
) -> RunCreateResult:
    """Validate input and config, then store a PENDING run with the parsed values.

    Input and config are refused before anything is written, with every
    failing field named; the run keeps the fingerprint of the plan it was
    validated against. `parent`: the run and stage id that start it, a child run.
    """
    workflow = deps.registry.get(cmd.workflow_id)
    if workflow is None:
        raise WorkflowNotFoundError(cmd.workflow_id)
    parsed_input = workflow.validate_input(cmd.input)
    config = workflow.parse_config(cmd.config)
    unstorable = [
        problem
        for problem in (
            unstorable_part(parsed_input, "input"),
            unstorable_part(config, "config"),
            unstorable_part(cmd.metadata, "metadata"),
        )
        if problem is not None
    ]
    if unstorable:  # refused here, the same on every database, not by PostgreSQL's commit
        raise InvalidRunInputError(
            workflow.id, [f"{problem}, which no database can store" for problem in unstorable]
        )
    now = deps.clock.now()
    run_id = cmd.run_id or deps.ids.new_id()
    run = RunRecord(
        id=run_id,
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
        parent_run_id=None if parent is None else parent[0],
        parent_stage_id=None if parent is None else parent[1],
        trace_context=observer().run_trace_context(run_id, workflow.id),
    )
    await unit.db.create_run(run)
    unit.emit(WorkflowCreated(timestamp=now, workflow_run_id=run.id, workflow_id=workflow.id))
    return RunCreateResult(workflow_run_id=run.id)


async def cancel_run(deps: Deps, unit: Unit, cmd: RunCancel) -> RunCancelResult:
    """Cancel the run and its open stages; queued jobs are cancelled with it
    (`Unit.with_jobs`).

    A stage executing right now finishes its body, then finds the run
    cancelled and discards its result (the ghost guards of `job.execute`).
    The run is written at the version it was read at, so a run that ended
    meanwhile (its last stage's commit completed it) stays as it ended.
    """
    now = deps.clock.now()
    run = await _mark_cancelled(unit, cmd.workflow_run_id, now)
    if run is None:
        return RunCancelResult(cancelled=False)
    mapped = False
    for row in await unit.db.stages_of_run(run.id):
        mapped = mapped or row.items_total > 0
        if row.status in ACTIVE:
            await unit.db.update_stage(
                row.id, {"status": Status.CANCELLED, "completed_at": now, "next_poll_at": None}
            )
    if mapped:  # every item not finished is cancelled with its stage
        await unit.db.cancel_items(run.id)

    async def cancel_jobs() -> None:
        await deps.jobs.cancel_by_run(run.id)

    await unit.with_jobs(cancel_jobs)
    unit.emit(WorkflowCancelled(timestamp=now, workflow_run_id=run.id, reason=cmd.reason))
    return RunCancelResult(cancelled=True)


async def _mark_cancelled(unit: Unit, run_id: str, now: datetime) -> RunRecord | None:
    """Move the run to CANCELLED at the version it is read at; the run as written, or None
    when it is missing or ended first."""
    cancelled: RunChanges = {"status": Status.CANCELLED, "completed_at": now}
    for tries_left in reversed(range(_CANCEL_TRIES)):
        run = await unit.db.get_run(run_id)
        if run is None or run.status in TERMINAL:
            return None
        try:
            written = await unit.db.update_run(run.id, cancelled, expected_version=run.version)
        except StaleVersionError:
            if not tries_left:
                raise
            continue  # a transition committed since the read: read what it left
        unit.finished.append(written)
        return written
    return None


async def same_request(deps: Deps, cmd: RunCreate, result: RunCreateResult) -> None:
    """Refuse a `run.create` whose idempotency key created a run from a different request
    (another workflow, input or config): answering with that run would drop this input
    silently. A repeat of the same request gets its run back, as it should."""
    if cmd.idempotency_key is None:
        return
    run = await deps.persistence.get_run(result.workflow_run_id)
    workflow = deps.registry.get(cmd.workflow_id)
    if run is None or workflow is None:
        return
    if run.workflow_id != cmd.workflow_id:
        what = f"workflow ({run.workflow_id})"
    elif run.input != workflow.validate_input(cmd.input):
        what = "input"
    elif run.config != workflow.parse_config(cmd.config):
        what = "config"
    else:
        return
    raise IdempotencyKeyReusedError(cmd.idempotency_key, run.id, what)
