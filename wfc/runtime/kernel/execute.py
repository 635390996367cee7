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
   run's transition (`decide_next`), so a worker commits once per stage where
   the spec's host commits twice.

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
from typing import Any

from wfc.errors import (
    ExpectationFailed,
    RecordNotFoundError,
    StageNotFoundError,
    WorkflowNotFoundError,
)
from wfc.observability import attempt_opened, observer
from wfc.plan import PlanStage
from wfc.runtime.commands import JobExecute, JobExecuteResult, RunTransitionResult
from wfc.runtime.copies import changed, json_copy
from wfc.runtime.events import (
    StageCompleted,
)
from wfc.runtime.handoff import NextRunTaker, handing_off, next_run_taker
from wfc.runtime.kernel.children import execute_child
from wfc.runtime.kernel.claim import ClaimAtCreate, ClaimAtOutcomeFailed, start_claimed
from wfc.runtime.kernel.deps import Deps, KeyCompletion, Unit, atomic
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
    refresh_run_totals,
    save_output,
    stage_started,
    warm_up,
)
from wfc.runtime.kernel.sibling_hand_on import hand_on_sibling
from wfc.runtime.kernel.stage_outcome import (
    Discarded,
    Execution,
    commit_outcome,
    elapsed_ms,
    emit_outcome,
    record_failure,
    record_suspension,
    why_refused,
)
from wfc.runtime.kernel.transition import NOOP, NeedJobs, decide_next
from wfc.runtime.kernel.waits import builtin_report
from wfc.runtime.prevalidated import maker
from wfc.runtime.record_builders import builder
from wfc.runtime.records import TERMINAL, RunRecord, StageChanges, StageFence, StageRecord, Status
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
    stage = workflow.stage(cmd.stage_id)
    if stage is None:
        raise StageNotFoundError(cmd.stage_id, cmd.workflow_id)
    if stage.map is not None or stage.child is not None:  # items, a child run: their own
        run_ = execute_item if stage.map is not None else execute_child
        return await run_(deps, workflow, stage, cmd, causation_id, key)
    started_at = deps.clock.now()
    alone = workflow.alone(stage.id)
    try:
        opened = await _phase_start(deps, workflow, stage, cmd, causation_id, started_at, alone)
    except Discarded as refused:
        return _ghost(refused.reason, "before execution")
    if isinstance(opened, JobExecuteResult):
        return opened
    run, row, outputs, rows = opened
    attempt_opened(run)
    # Kept as read, before the body can change them, for a stage this worker hands itself:
    # the next group's, or a sibling of this group's (`sibling_hand_on`), the last group's too.
    may_hand = handing_off() and (bool(workflow.group(row.execution_group + 1)) or not alone)
    pristine = json_copy(outputs) if cmd.transition and may_hand else None

    if workflow.plan.fingerprint != run.plan_fingerprint:
        # The run was adopted by another plan after this job was leased: its workers run it.
        spec = replace(job_spec(run, workflow, stage.id), attempts_made=cmd.attempt)
        await deps.jobs.enqueue([spec])
        return _ghost(f"Run {run.id} now runs on plan {run.plan_fingerprint}", "before execution")
    if cmd.attempt > stage.retry.max_attempts:
        report = Report(
            outcome=Failure(
                error=f"AttemptsExhausted: Stage {stage.id} was delivered {cmd.attempt} times "
                f"(max {stage.retry.max_attempts}): its attempts were interrupted (a worker "
                "lost, a lease expired) or their outcome could not be stored",
                retryable=False,
            )
        )
    elif stage.builtin:  # a sleep's or a signal wait's timer is due (`kernel.waits`)
        report = builtin_report(deps, stage)
    else:
        async with deps.pinning.released():
            report = await run_execute(deps, workflow, run, row, outputs, cmd.config, cmd.attempt)
        report = storable_report(stage.id, report)

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
        pristine=pristine,
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
) -> tuple[RunRecord, StageRecord, dict[str, Any], list[StageRecord]] | JobExecuteResult:
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
    warm = deps.warm.take(cmd.workflow_run_id, stage.id, cmd.attempt)
    if warm is not None:
        run, rows, known = warm.run, warm.rows, warm.outputs
    else:
        context = None if alone else (stage.id, workflow.group_of(stage.id))
        found = await deps.persistence.run_with_stages(cmd.workflow_run_id, for_stage=context)
        if found is None:
            raise RecordNotFoundError("WorkflowRun", cmd.workflow_run_id)
        (run, rows), known = found, None
    if run.status is not Status.RUNNING:
        raise Discarded(f"Run {run.id} is {run.status.value}")
    existing = next((row for row in rows if row.stage_id == stage.id), None)
    if existing is not None and existing.status in TERMINAL:
        return await _finished_before(deps, existing)
    group = workflow.group_of(stage.id)
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
        fresh = new_stage_row(deps, run, workflow, stage.id, generation=0)
        create = changed(
            fresh,
            {
                "status": Status.RUNNING,
                "started_at": now,
                "attempt": cmd.attempt,
                "config": dict(cmd.config.get(stage.id, run.config.get(stage.id, {}))),
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
        current = await deps.persistence.get_stage(run.id, stage.id)
        if current is not None and current.status in TERMINAL:
            return await _finished_before(deps, current)
        shown = f"{current.status.value} at attempt {current.attempt}" if current else "gone"
        raise Discarded(f"Stage {stage.id} of run {run.id} is {shown}")
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
    key = output_key(ex.run, ex.stage.id)
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
        stage_id=ex.stage.id,
        stage_name=ex.row.stage_name,
        duration_ms=duration_ms,
    )
    if ex.cmd.transition:  # its result is made once the transition is known
        return await _commit_completion_and_transition(ex, completed, outcome.output, event)
    result = _RESULT(outcome="completed", output=outcome.output)
    await commit_outcome(ex, completed, result, event)
    return result


async def _commit_completion_and_transition(
    ex: Execution, changes: StageChanges, output: Any, event: StageCompleted
) -> JobExecuteResult:
    """Record the completion and run the run's transition in one transaction.

    The run's row is locked first (its version bumped, in the statement that
    writes the stage's outcome), so transitions of one run queue up behind
    each other, and the stages are read in a later statement, after the lock
    is held. On PostgreSQL (READ COMMITTED) that
    order is what makes it safe: two parallel siblings finishing at once
    would otherwise each read the other as still RUNNING, both do nothing,
    and leave the run stuck. Locking the run before the stage also matches
    the order `run.cancel` takes them in, so the two cannot deadlock.

    The output is stored once the fenced write has passed, never before: a
    ghost's output never replaces the committed one. When the blob store and
    the job queue share the transaction, the output is stored and the leased
    job (`cmd.job_id`) completed in it too: a stage then costs one commit, and
    its outcome, output, job and the next group's jobs become visible together
    or not at all.
    """
    if ex.alone:
        try:
            return await _completion_and_transition(ex, changes, output, event, predict=True)
        except ExpectationFailed:  # the run moved since the stage started: read what it is
            ex.key.completed = False  # in the transaction that wrote nothing
        except ClaimAtOutcomeFailed:
            return await _without_claim(ex, changes, output, event)
    try:
        return await _completion_and_transition(ex, changes, output, event, predict=False)
    except ClaimAtOutcomeFailed:
        return await _without_claim(ex, changes, output, event)


async def _without_claim(
    ex: Execution, changes: StageChanges, output: Any, event: StageCompleted
) -> JobExecuteResult:
    """The outcome again, alone, after the claim its transaction made raised and rolled it
    back whole (no savepoint: a PostgreSQL transaction is aborted by any error in it, and
    none of the stores nests one): the outcome commits as without the claim, and the run
    that claim would have taken stays PENDING for an ordinary claim, which deals with the
    error as `claim_pending` does."""
    log.warning(
        "the claim in an outcome's transaction failed; the outcome is written alone",
        exc_info=True,
    )
    ex.key.completed = False  # in the transaction that rolled back
    return await _completion_and_transition(ex, changes, output, event, predict=False, claim=False)


async def _completion_and_transition(
    ex: Execution,
    changes: StageChanges,
    output: Any,
    event: StageCompleted,
    *,
    predict: bool,
    claim: bool = True,
) -> JobExecuteResult:
    """The transaction, taking what the stage started with as still true when `predict`:
    the run at `ex.run`'s version and the stage's row as `ex.row` (no other transition
    since, as for `_stages_unchanged`), so the store may skip its reads and send it as one
    statement that checks them (`Persistence.lock_run_and_update_stage(expect=)`). With
    `claim`, a transition that ends the run claims the next PENDING run for the slot it
    frees (`_claim_next`), unless the store answers this transaction's reads from the
    predictions (PostgreSQL): the claim's read would cost the outcome its one statement,
    and a transaction that reads takes more round trips than the claim it saves."""
    claimed: tuple[NextRunTaker, ClaimAtCreate, int] | None = None
    async with atomic(ex.deps, ex.causation_id) as unit:
        locked = await unit.db.lock_run_and_update_stage(
            ex.run.id,
            ex.row.id,
            changes,
            fence=StageFence.running(ex.cmd.attempt),
            expect=(ex.run, ex.row) if predict else None,
        )
        if locked is None:
            attempt = ex.cmd.attempt
            raise Discarded(await why_refused(unit, ex.run.id, ex.row.id, attempt))
        run, updated = locked
        rows = _stages_unchanged(ex, run, updated)
        if rows is None and await _last_of_group(ex, unit, run.id):
            rows = await unit.db.stages_of_run(run.id)
        # After the run's lock and the fence, the order every writer takes them in; and
        # after the reads, so that on PostgreSQL the write travels with the next one.
        await save_output(ex.deps, ex.run, ex.stage.id, output)
        run = await refresh_run_totals(unit, run.id, ex.report.metrics, rows) or run
        emit_outcome(ex, unit, event)
        if unit.shared:  # completed with the next group's jobs, if it opens one
            unit.completing = ex.cmd.job_id
        # Without the rows, siblings still run: the last of them to finish moves the run on,
        # and this one's worker takes the next pending sibling (`sibling_hand_on`).
        transition: RunTransitionResult | None = NOOP
        if rows is None:
            await hand_on_sibling(unit, run, ex)
        else:
            transition = await _decide(ex, unit, run, rows, output)
        if unit.completing is not None:
            completed = await _complete_job(ex.deps, unit.take_completing(), ex.cmd.attempt)
        else:
            completed = unit.shared and ex.cmd.job_id is not None
        result = _RESULT(
            outcome="completed", output=output, transition=transition, job_completed=completed
        )
        await ex.key.complete(unit.db, result)
        if claim and _ends(transition) and getattr(unit.db, "claims_at_outcome", True):
            claimed = await _claim_next(ex.deps, unit)
    if claimed is not None:
        host, did, taken = claimed
        host.claimed_at_outcome(
            did.started,
            jobs_waiting=len(did.job_ids) > host.jobs_taken - taken,
            others_pending=did.others_pending,
        )
    return result


def _ends(transition: RunTransitionResult | None) -> bool:
    """Whether the outcome's transition ends the run, freeing its slot."""
    return transition is not None and transition.action in ("completed", "failed")


async def _claim_next(deps: Deps, unit: Unit) -> tuple[NextRunTaker, ClaimAtCreate, int] | None:
    """The run just ended and its slot has nothing handed to it: if the worker left runs
    PENDING for want of room (`handoff.next_run_taker`), claim the best of them here, as
    `RunClaimPending` would once the slot freed up, and hand its first stage to the slot —
    a burst's run then costs no claim transaction of its own. A claim that raises rolls
    the outcome back with it (`ClaimAtOutcomeFailed`): the caller writes it again alone."""
    host = next_run_taker()
    if host is None:
        return None
    did, taken = ClaimAtCreate(), host.jobs_taken
    try:
        found = await unit.db.claim_next_pending_run(
            run_id=host.run_id, plans=deps.registry.plans()
        )
        await start_claimed(deps, unit, found, host, did)
    except ExpectationFailed:
        # SQLite's held run lock, written before the claim's read, found the run moved:
        # the caller writes the outcome again, reading (as without a claim). PostgreSQL's
        # transactions never get here: they do not claim (`claims_at_outcome`).
        raise
    except Exception as error:
        raise ClaimAtOutcomeFailed(str(error)) from error
    return host, did, taken


async def _decide(
    ex: Execution, unit: Unit, run: RunRecord, rows: list[StageRecord], output: Any
) -> RunTransitionResult | None:
    """The run's transition in the outcome's transaction, `rows` read after its lock; None
    when a failed sibling leaves the decision to a transition that reads the jobs."""
    known = {**(ex.pristine or {}), ex.stage.id: output}
    if ex.pristine is not None:
        unit.after_commit(warm_up(ex.deps, unit, run, rows, known))
    try:
        return await decide_next(ex.deps, unit, run, rows, None, locked=True, known=known)
    except NeedJobs:
        return None  # a failed sibling: the caller's own transition reads the jobs


async def _last_of_group(ex: Execution, unit: Unit, run_id: str) -> bool:
    """Whether no stage of the run is left PENDING, RUNNING or SUSPENDED, asked after the
    run's lock (so a sibling that finished first has committed, and one finishing now
    waits for this transaction): then this stage finished its group last, and it alone
    reads the group's rows and opens the next one. A stage alone in its group is last.

    A count, not the rows: every sibling before the last costs the same whatever the
    group's width. It is what `decide_next` would conclude from the rows (any active
    row: nothing to do), without sending them."""
    if ex.alone:
        return True
    return await unit.db.count_active_stages(run_id) == 0


def _stages_unchanged(
    ex: Execution, locked: RunRecord, updated: StageRecord
) -> list[StageRecord] | None:
    """The run's stages without reading them again, when what was read is still true.

    Every transition bumps the run's version, so if the lock just taken bumped
    it exactly once since `ex.run` was read, no transition committed in
    between: no group was opened, no run was failed, cancelled or rerun. Rows
    can change without a transition only by a stage's own execution (its start,
    its failure or suspension); for a stage alone in its group that is this
    stage, whose row is `updated`. With siblings, they are read again.
    """
    if not ex.alone or locked.version != ex.run.version + 1:
        return None
    rows = [row for row in ex.known_rows if row.stage_id != updated.stage_id]
    return sorted([*rows, updated], key=lambda row: (row.execution_group, row.stage_number))


async def _complete_job(deps: Deps, job_id: str | None, attempt: int) -> bool:
    """Complete the leased job in the current transaction (while it is at this delivery);
    False if there is none to."""
    if job_id is None:
        return False
    try:
        await deps.jobs.complete(job_id, attempt=attempt)
    except RecordNotFoundError:
        return False
    return True
