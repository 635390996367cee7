"""`job.execute` (spec §4.6): run one stage in three phases.

1. A short transaction marks the stage RUNNING and records `stage:started`,
   so the start is visible while the body runs — unless the transition that
   handed this job to its worker recorded the start already (`open_group`).
2. The stage body runs outside any transaction.
3. A second transaction records the outcome, but only if the run is still
   RUNNING and this delivery still owns the stage (`StageFence.running`: the
   row is RUNNING at `cmd.attempt`); otherwise the result is a *ghost* and is
   discarded (the run was cancelled or failed meanwhile, or the worker was
   paused past its lease and another delivery took the stage over or committed
   it). With `cmd.transition` a completed stage's transaction also runs the
   run's transition (`decide_next`, in `completion`), so a worker commits once
   per stage where the spec's host commits twice.

Phase 1 is fenced too (`StageFence.startable`): a delivery starts the stage
only if no later one did and it has not finished. A delivery past the stage's
`max_attempts` (every earlier one was interrupted: killed workers, expired
leases) fails the stage without running it, so nothing is redelivered forever.

A failed attempt is retried when the stage's retry policy allows: the stage
goes back to PENDING with the error kept, and the result carries `retry_at`,
the time the host should make the job due again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from wfc.errors import (
    RecordNotFoundError,
    StageNotFoundError,
    WorkflowNotFoundError,
)
from wfc.observability import attempt_opened, observer
from wfc.plan import PlanStage
from wfc.runtime.commands import JobExecute, JobExecuteResult
from wfc.runtime.copies import changed
from wfc.runtime.events import (
    StageCompleted,
)
from wfc.runtime.handoff import handing_off
from wfc.runtime.kernel.children import execute_child
from wfc.runtime.kernel.completion import commit_completion_and_transition
from wfc.runtime.kernel.deps import Deps, KeyCompletion, atomic
from wfc.runtime.kernel.invoke import (
    Failure,
    Produced,
    Report,
    Suspended,
    run_execute,
)
from wfc.runtime.kernel.items import execute_item
from wfc.runtime.kernel.rows import (
    job_spec,
    load_outputs,
    new_stage_row,
    output_key,
    stage_started,
)
from wfc.runtime.kernel.stage_outcome import (
    Discarded,
    Execution,
    commit_outcome,
    elapsed_ms,
    record_failure,
    record_suspension,
)
from wfc.runtime.kernel.waits import builtin_report
from wfc.runtime.prevalidated import maker
from wfc.runtime.record_builders import builder
from wfc.runtime.records import TERMINAL, RunRecord, StageChanges, StageFence, StageRecord, Status
from wfc.runtime.stage_outputs import StageOutputs
from wfc.runtime.storable import storable_text, unstorable_part
from wfc.runtime.workflow import Workflow

log = logging.getLogger("wfc.kernel")
# Built from values of their fields' types: not validated again (`wfc.runtime.prevalidated`).
_STAGE_COMPLETED = maker(StageCompleted)
_RESULT = maker(JobExecuteResult)
_EXECUTION = builder(Execution)  # one per stage executed, without a class call


def _ghost(reason: str, when: str) -> JobExecuteResult:
    log.warning("ghost %s: %s — result discarded", when, reason)
    return JobExecuteResult(
        outcome="failed",
        ghost=True,
        retryable=False,
        error=f"{reason} {when} — result discarded",
    )


async def execute_job(
    deps: Deps, cmd: JobExecute, causation_id: str, key: KeyCompletion
) -> JobExecuteResult:
    """Execute the stage `cmd` names, its outcome's transaction completing the idempotency
    `key` with the result; raises only for lookups that cannot succeed. The attempt is
    told to the observability hook (a span per attempt when tracing is on)."""
    with observer().stage_attempt(cmd) as attempt:
        result = await _execute_job(deps, cmd, causation_id, key)
        attempt.finished(result)
    return result


async def _execute_job(
    deps: Deps, cmd: JobExecute, causation_id: str, key: KeyCompletion
) -> JobExecuteResult:
    workflow = deps.registry.get(cmd.workflow_id)
    if workflow is None:
        raise WorkflowNotFoundError(cmd.workflow_id)
    stage_id = cmd.stage_id
    stage = workflow.stage(stage_id)
    if stage is None:
        raise StageNotFoundError(stage_id, cmd.workflow_id)
    plain = workflow.plain_stage(stage_id)  # nearly every stage: none of what follows
    if not plain and (stage.map is not None or stage.child is not None):
        run_ = execute_item if stage.map is not None else execute_child  # their own
        return await run_(deps, workflow, stage, cmd, causation_id, key)
    started_at = deps.clock.now()
    alone = workflow.alone(stage_id)
    try:
        opened = await _phase_start(deps, workflow, stage, cmd, causation_id, started_at, alone)
    except Discarded as refused:
        return _ghost(refused.reason, "before execution")
    if isinstance(opened, JobExecuteResult):
        return opened
    run, row, outputs, rows = opened
    attempt_opened(run)
    # Handed on as stored to a stage this worker hands itself: the next group's, or a sibling
    # of this group's (`sibling_hand_on`), the last group's too. No copy is needed: the body
    # gets its own objects from `outputs` and never the ones held (`StageOutputs`).
    may_hand = handing_off() and (bool(workflow.group(row.execution_group + 1)) or not alone)
    stored_outputs = outputs.held if cmd.transition and may_hand else None

    if workflow.plan.fingerprint != run.plan_fingerprint:
        # The run was adopted by another plan after this job was leased: its workers run it.
        spec = replace(job_spec(run, workflow, stage_id), attempts_made=cmd.attempt)
        await deps.jobs.enqueue([spec])
        return _ghost(f"Run {run.id} now runs on plan {run.plan_fingerprint}", "before execution")
    if cmd.attempt > stage.retry.max_attempts:
        report = Report(
            outcome=Failure(
                error=f"AttemptsExhausted: Stage {stage_id} was delivered {cmd.attempt} times "
                f"(max {stage.retry.max_attempts}): its attempts were interrupted (a worker "
                "lost, a lease expired) or their outcome could not be stored",
                retryable=False,
            )
        )
    elif not plain and stage.builtin:  # a sleep's or a signal wait's timer is due (`waits`)
        report = builtin_report(deps, stage)
    else:
        async with deps.pinning.released():
            report = await run_execute(deps, workflow, run, row, outputs, cmd.config, cmd.attempt)
        report = storable_report(stage_id, report)

    execution = _EXECUTION(
        deps=deps,
        run=run,
        stage=stage,
        row=row,
        cmd=cmd,
        causation_id=causation_id,
        started_at=started_at,
        report=report,
        key=key,
        stored_outputs=stored_outputs,
        known_rows=rows,
        alone=alone,
    )
    try:
        return await _phase_finish(execution)
    except Discarded as refused:
        return _ghost(refused.reason, "after stage execution")


async def _phase_start(
    deps: Deps,
    workflow: Workflow,
    stage: PlanStage,
    cmd: JobExecute,
    causation_id: str,
    now: datetime,
    alone: bool,
) -> tuple[RunRecord, StageRecord, StageOutputs, list[StageRecord]] | JobExecuteResult:
    """Pre-flight and phase 1: the run, the stage marked RUNNING, its workflow context and
    the run's stage rows as read with the run — or the result of a duplicate delivery of a
    completed stage.

    The pre-flight is one read outside any transaction, none for a stage this
    worker handed itself (`warm`). A stage with siblings reads its own row and those of
    earlier groups, not its siblings': its context is the outputs of the groups before
    its own, so neither its read nor its context grows with its group's width (and no
    longer depends on which siblings happened to finish first). A stage already RUNNING
    for this very delivery was started by the transition that queued its job
    (`open_group`), so there is nothing to write; otherwise a short transaction
    records the start.
    """
    stage_id, run_id = cmd.stage_id, cmd.workflow_run_id  # read once (pydantic models)
    warm = deps.warm.take(run_id, stage_id, cmd.attempt)
    if warm is not None:
        run, rows, known = warm.run, warm.rows, warm.outputs
    else:
        context = None if alone else (stage_id, workflow.group_of(stage_id))
        found = await deps.persistence.run_with_stages(run_id, for_stage=context)
        if found is None:
            raise RecordNotFoundError("WorkflowRun", run_id)
        (run, rows), known = found, None
    if run.status is not Status.RUNNING:
        raise Discarded(f"Run {run.id} is {run.status.value}")
    existing = next((row for row in rows if row.stage_id == stage_id), None)
    if existing is not None and existing.status in TERMINAL:
        return await _finished_before(deps, existing)
    group = workflow.group_of(stage_id)
    outputs = await load_outputs(deps, (row for row in rows if row.execution_group < group), known)
    if existing is not None and _started_for(existing, cmd):
        return run, existing, outputs, rows
    async with atomic(deps, causation_id) as unit:
        # The run's row first, then the stage's: the order `run.cancel` (and a cancel
        # cascading from a parent run) takes them in. Started the other way round, the
        # start held the stage and waited for the run (its event's sequence) while a
        # cancel held the run and waited for the stage: a deadlock on PostgreSQL. One
        # statement there (the row built from the run as read before: its config and
        # plan do not change while it runs).
        fresh = new_stage_row(deps, run, workflow, stage_id, generation=0)
        create = changed(
            fresh,
            {
                "status": Status.RUNNING,
                "started_at": now,
                "attempt": cmd.attempt,
                "config": dict(cmd.config.get(stage_id, run.config.get(stage_id, {}))),
            },
        )
        run, row = await unit.db.lock_run_and_start_stage(
            run.id,
            create,
            {"status": Status.RUNNING, "started_at": now, "attempt": cmd.attempt},
            StageFence.startable(cmd.attempt),
        )
        if run.status is not Status.RUNNING:
            raise Discarded(f"Run {run.id} is {run.status.value}")
        if row is not None:
            unit.emit(stage_started(row, now))
    if row is None:  # finished, or started by a later delivery, since it was read
        current = await deps.persistence.get_stage(run.id, stage_id)
        if current is not None and current.status in TERMINAL:
            return await _finished_before(deps, current)
        shown = f"{current.status.value} at attempt {current.attempt}" if current else "gone"
        raise Discarded(f"Stage {stage_id} of run {run.id} is {shown}")
    return run, row, outputs, rows


async def _finished_before(deps: Deps, row: StageRecord) -> JobExecuteResult:
    """The answer to a delivery of a stage that finished (a lease reaped after the outcome
    committed): never run a stage twice. A failed stage answers with its error, so the
    host transitions the run, which fails it."""
    if row.status is Status.COMPLETED:
        own = await load_outputs(deps, [row])
        return JobExecuteResult(outcome="completed", output=own.get(row.stage_id))
    return JobExecuteResult(
        outcome="failed",
        error=row.error or f"Stage {row.stage_id} is {row.status.value}",
        retryable=False,
    )


def storable_report(stage_id: str, report: Report) -> Report:
    """`report`, or a failure in its place when what it would store (an output, a suspend
    state) holds a character no database takes (`wfc.runtime.storable`): the attempt then
    fails with a clear error instead of its commit failing on every redelivery. A failure's
    own error has such characters escaped."""
    outcome = report.outcome
    if isinstance(outcome, Failure):  # its error is stored in the stage, job, log and outbox
        return replace(report, outcome=replace(outcome, error=storable_text(outcome.error)))
    if isinstance(outcome, Produced):
        if outcome.text is not None:  # proved storable as it was encoded
            return report
        problem, what = unstorable_part(outcome.output), "an output"
    elif isinstance(outcome, Suspended):
        problem, what = unstorable_part(outcome.request.state), "a suspend state"
    else:
        return report
    if problem is None:
        return report
    error = f"UnstorableOutput: Stage {stage_id} returned {what} no database can store ({problem})"
    return replace(report, outcome=Failure(error=error, retryable=False))


def _started_for(row: StageRecord, cmd: JobExecute) -> bool:
    """Whether `row`'s start was recorded for this delivery already. A redelivery never
    matches: every dequeue counts an attempt, so it finds the row at an older one."""
    return row.status is Status.RUNNING and row.attempt == cmd.attempt


async def _phase_finish(ex: Execution) -> JobExecuteResult:
    outcome = ex.report.outcome
    if isinstance(outcome, Failure):
        return await record_failure(ex, outcome)
    if isinstance(outcome, Suspended):
        return await record_suspension(ex, outcome)
    assert isinstance(outcome, Produced), f"execute cannot end with {type(outcome).__name__}"
    stage_id = ex.row.stage_id  # the row's: a plain record, where the plan's stage is not
    key = output_key(ex.run, stage_id)
    now = ex.deps.clock.now()
    duration_ms = elapsed_ms(ex.started_at, now)
    completed: StageChanges = {
        "status": Status.COMPLETED,
        "completed_at": now,
        "duration_ms": duration_ms,
        "output_ref": key,
        "metrics": dict(ex.report.metrics),
        "error": None,
        "suspended_state": None,
        "next_poll_at": None,
    }
    event = _STAGE_COMPLETED(
        timestamp=now,
        workflow_run_id=ex.run.id,
        stage_id=stage_id,
        stage_name=ex.row.stage_name,
        duration_ms=duration_ms,
    )
    if ex.cmd.transition:  # its result is made once the transition is known
        return await commit_completion_and_transition(ex, completed, outcome.output, event)
    result = _RESULT(outcome="completed", output=outcome.output)
    await commit_outcome(ex, completed, result, event)
    return result
