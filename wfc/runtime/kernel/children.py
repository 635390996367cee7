"""`job.execute` of a child-workflow stage (`wfc.plan_children`): start the child run, or
find it, and wait for it holding no worker.

The stage opens as any stage does, PENDING with a job. Its delivery runs no user code:
one transaction locks the parent run, starts the stage (fenced as every delivery's
start is, `StageFence.startable`), reads the runs its stages started, and then:

- no child yet (or the last one failed and the retry policy allows another): create
  the next one, PENDING, as `run.create` does, under the id derived from its key
  `child:<parent run>:<stage>:<generation>:<attempt>`, and wait for it;
- the last child is still active (a redelivery of the job that created it): wait for it;
- the last child ended (it ended while this delivery held the stage): settle the stage
  from it, as its end would have (`wfc.runtime.kernel.child_outcome`).

Waiting leaves the stage SUSPENDED with the child's id in `suspended_state` and no
poll time, and completes the job in the same transaction: nothing is leased, polled or
queued for the stage until the child ends, whose own final transaction settles it.

Creating the child in the transaction that moves the stage to SUSPENDED (fenced on this
delivery still owning the row) is what makes creation happen once: a stale delivery's
transaction is refused before it creates anything, and a redelivery finds the child by
its key. The child must be served by this worker's registry; the child's input must be
valid for it; and runs nest at most `MAX_CHILD_DEPTH` deep. Otherwise the stage fails,
not retried.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

from wfc.errors import InvalidRunInputError, RecordNotFoundError
from wfc.observability import attempt_opened
from wfc.plan import MAX_CHILD_DEPTH, PlanStage
from wfc.runtime.commands import JobExecute, JobExecuteResult, RunCreate
from wfc.runtime.kernel.child_outcome import (
    DEPTH_EXCEEDED,
    RefusedWrite,
    child_error,
    depth_of,
    fail_stage,
    retried,
    settle,
)
from wfc.runtime.kernel.deps import Deps, KeyCompletion, Unit, atomic
from wfc.runtime.kernel.invoke import resolve_input
from wfc.runtime.kernel.plans import keep_plan
from wfc.runtime.kernel.rows import load_outputs, new_stage_row, stage_started
from wfc.runtime.kernel.runs import create_run
from wfc.runtime.records import (
    ACTIVE,
    TERMINAL,
    RunRecord,
    StageChanges,
    StageFence,
    StageRecord,
    Status,
)
from wfc.runtime.workflow import Workflow

log = logging.getLogger("wfc.kernel")

NOT_SERVED = "ChildWorkflowNotServed"
BAD_INPUT = "InvalidChildInput"


def child_key(run_id: str, stage_id: str, generation: int, attempt: int) -> str:
    """The idempotency key of the `attempt`-th child run of a stage of `run_id`."""
    return f"child:{run_id}:{stage_id}:{generation}:{attempt}"


def child_run_id(run_id: str, stage_id: str, generation: int, attempt: int) -> str:
    """The id of that child run: derived from its key, so it is created once at most (a
    second insert under it fails) and found again by whoever looks for it."""
    key = child_key(run_id, stage_id, generation, attempt)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


class _Refused(Exception):
    """The parent run ended, or a later delivery owns the stage: this one writes nothing."""


async def execute_child(
    deps: Deps,
    workflow: Workflow,
    stage: PlanStage,
    cmd: JobExecute,
    causation_id: str,
    key: KeyCompletion,
) -> JobExecuteResult:
    """Start or find the stage's child run and wait for it (see the module)."""
    assert stage.child is not None
    deps.warm.take(cmd.workflow_run_id, stage.id, cmd.attempt)  # started here, if handed
    found = await deps.persistence.run_with_stages(cmd.workflow_run_id)
    if found is None:
        raise RecordNotFoundError("WorkflowRun", cmd.workflow_run_id)
    run, rows = found
    existing = next((row for row in rows if row.stage_id == stage.id), None)
    if run.status is not Status.RUNNING:
        return _ghost(f"Run {run.id} is {run.status.value}")
    if existing is not None and existing.status in TERMINAL:
        return await _finished_before(deps, existing)
    attempt_opened(run)  # the child's trace context is then this attempt's span
    child_input: Any = None
    try:
        child_input = resolve_input(workflow, stage, run, await load_outputs(deps, rows))
    except Exception as error:  # the output it takes is missing: failed below, at creation
        child_input = error
    depth = await depth_of(deps, run)
    await keep_plan(deps, stage.child.workflow_id)
    try:
        async with atomic(deps, causation_id) as unit:
            result = await _deliver(deps, unit, run, workflow, stage, cmd, child_input, depth)
            await key.complete(unit.db, result)
    except (_Refused, RefusedWrite) as refused:
        return _ghost(str(refused))
    return result


async def _deliver(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    workflow: Workflow,
    stage: PlanStage,
    cmd: JobExecute,
    child_input: Any,
    depth: int,
) -> JobExecuteResult:
    assert stage.child is not None
    locked = await unit.db.update_run(run.id, {})  # the run first, then its stage
    if locked.status is not Status.RUNNING:
        raise _Refused(f"Run {run.id} is {locked.status.value}")
    row = await _start(deps, unit, locked, workflow, stage, cmd)
    fence = StageFence.running(cmd.attempt)
    number, latest = _latest(await unit.db.children_of(run.id), run.id, stage.id, row.generation)
    if latest is not None and latest.status in ACTIVE:
        return await _wait(deps, unit, locked, row, latest.id, number, cmd)
    if latest is not None and (
        latest.status is Status.COMPLETED or not retried(stage, latest, number)
    ):
        # It ended while this delivery held the stage, so its end left the stage alone.
        transition = await settle(deps, unit, locked, workflow, row, latest, number, fence)
        if latest.status is Status.COMPLETED:
            return JobExecuteResult(
                outcome="completed", output=latest.output, transition=transition
            )
        return JobExecuteResult(outcome="failed", error=child_error(latest), retryable=False)
    number += 1
    problem = _problem(deps, stage, child_input, depth)
    if problem is None:
        child_id = child_run_id(run.id, stage.id, row.generation, number)
        try:
            await create_run(
                deps,
                unit,
                RunCreate(
                    idempotency_key=child_key(run.id, stage.id, row.generation, number),
                    workflow_id=stage.child.workflow_id,
                    input=child_input,
                    run_id=child_id,
                    priority=locked.priority,
                ),
                parent=(run.id, stage.id),
            )
        except InvalidRunInputError as invalid:
            problem = f"{BAD_INPUT}: {invalid}"
        else:
            return await _wait(deps, unit, locked, row, child_id, number, cmd)
    failed = await fail_stage(deps, unit, locked, row, f"{problem}", fence)
    return JobExecuteResult(outcome="failed", error=failed.error, retryable=False)


def _problem(deps: Deps, stage: PlanStage, child_input: Any, depth: int) -> str | None:
    """Why the stage cannot start its child run, or None."""
    assert stage.child is not None
    name = stage.child.workflow_id
    if isinstance(child_input, Exception):
        return f"{BAD_INPUT}: Stage {stage.id}: {child_input}"
    if deps.registry.get(name) is None:
        return (
            f"{NOT_SERVED}: Stage {stage.id} runs workflow {name}, which this worker does not "
            "serve (a child workflow must be served by the workers of its parent)"
        )
    if depth + 1 > MAX_CHILD_DEPTH:
        return (
            f"{DEPTH_EXCEEDED}: Stage {stage.id} would start a run {depth + 1} deep "
            f"(at most {MAX_CHILD_DEPTH}): does workflow {name} start itself again?"
        )
    return None


async def _start(
    deps: Deps, unit: Unit, run: RunRecord, workflow: Workflow, stage: PlanStage, cmd: JobExecute
) -> StageRecord:
    """The stage's row started for this delivery (fenced: `_Refused` when a later delivery
    started it or it finished), or as the transition that handed the job here started it."""
    current = await unit.db.get_stage(run.id, stage.id)
    if current is not None and current.status is Status.RUNNING and current.attempt == cmd.attempt:
        return current
    now = deps.clock.now()
    fresh = new_stage_row(deps, run, workflow, stage.id, generation=0)
    create = replace(fresh, status=Status.RUNNING, started_at=now, attempt=cmd.attempt)
    row = await unit.db.start_stage(
        create,
        {"status": Status.RUNNING, "started_at": now, "attempt": cmd.attempt},
        StageFence.startable(cmd.attempt),
    )
    if row is None:
        raise _Refused(f"Stage {stage.id} of run {run.id} moved on before this delivery")
    unit.emit(stage_started(row, now))
    return row


def _latest(
    children: list[RunRecord], run_id: str, stage_id: str, generation: int
) -> tuple[int, RunRecord | None]:
    """The stage's last child run of this generation and its attempt number (0, None: none)."""
    by_id = {child.id: child for child in children}
    number, latest = 0, None
    while (found := by_id.get(child_run_id(run_id, stage_id, generation, number + 1))) is not None:
        number, latest = number + 1, found
    return number, latest


async def _wait(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    row: StageRecord,
    child_id: str,
    number: int,
    cmd: JobExecute,
) -> JobExecuteResult:
    """Leave the stage SUSPENDED waiting for `child_id`, and complete its job: the stage
    holds no worker, job or poll until the child ends."""
    state = {
        "child_run_id": child_id,
        "child_attempt": number,
        "since": deps.clock.now().isoformat(),
    }
    changes: StageChanges = {
        "status": Status.SUSPENDED,
        "suspended_state": state,
        "next_poll_at": None,
        "max_wait_until": None,
        "error": None,
    }
    fence = StageFence.running(cmd.attempt)
    written = await unit.db.update_stage_while_running(row.id, run.id, changes, fence=fence)
    if written is None:
        raise _Refused(f"Stage {row.stage_id} of run {run.id} moved on")
    job_id = cmd.job_id
    if job_id is not None:

        async def complete() -> None:
            await deps.jobs.complete(job_id, attempt=cmd.attempt)

        await unit.with_jobs(complete)
    return JobExecuteResult(outcome="suspended", job_completed=job_id is not None)


async def _finished_before(deps: Deps, row: StageRecord) -> JobExecuteResult:
    """A delivery of a stage that finished: its outcome again, nothing run."""
    if row.status is Status.COMPLETED:
        outputs = await load_outputs(deps, [row])
        return JobExecuteResult(outcome="completed", output=outputs.get(row.stage_id))
    return JobExecuteResult(
        outcome="failed",
        error=row.error or f"Stage {row.stage_id} is {row.status.value}",
        retryable=False,
    )


def _ghost(reason: str) -> JobExecuteResult:
    log.warning("ghost delivery of a child stage: %s — nothing written", reason)
    return JobExecuteResult(outcome="failed", ghost=True, retryable=False, error=reason)
