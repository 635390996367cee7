"""A child run's end, told to its parent (`wfc.plan_children`, `wfc.runtime.kernel.children`).

Every transaction that moves a run to COMPLETED, FAILED or CANCELLED lists it in
`Unit.finished`, and `run_finished` is called for it before that transaction commits
(`Deps.on_finished`). For a child run it settles the parent's stage there, in the
child's own final transaction: no job, no poll, and no crash can come between the
child ending and its parent learning of it.

The parent's run row is locked first (the order `run.cancel` and every stage outcome
take the run and its stages in, so the two cannot deadlock), then its stage row is read
under that lock. The stage is settled only while it is SUSPENDED waiting for this very
child (`suspended_state.child_run_id`), fenced on that status and the version read
(`StageFence`): a parent cancelled, rerun, or whose job was redelivered and holds the
stage RUNNING meanwhile gets nothing, and that delivery settles the stage itself when it
finds the child ended. A completed child completes the stage with its output and moves
the parent on (`decide_next`) in the same transaction; a failed one queues the stage's
retry, which starts a new child run when due, or fails the stage for good.

A run that ends FAILED or CANCELLED cancels its children still running, each in a
transaction of its own once it has committed (`cascade`), and so on down.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from wfc.plan import MAX_CHILD_DEPTH, PlanStage
from wfc.runtime.commands import RunCancel, RunTransition, RunTransitionResult
from wfc.runtime.events import StageFailed
from wfc.runtime.handoff import due_later
from wfc.runtime.kernel.deps import AfterCommit, Deps, Unit, atomic
from wfc.runtime.kernel.rows import job_spec, save_output
from wfc.runtime.kernel.runs import cancel_run
from wfc.runtime.kernel.serving import Serving, run_workflow
from wfc.runtime.kernel.transition import NeedJobs, decide_next, transition_run
from wfc.runtime.kernel.waits import completed_event, completion
from wfc.runtime.records import ACTIVE, RunRecord, StageChanges, StageFence, StageRecord, Status
from wfc.runtime.workflow import Workflow

log = logging.getLogger("wfc.kernel")

CHILD_FAILED = "ChildFailed"
CHILD_CANCELLED = "ChildCancelled"
DEPTH_EXCEEDED = "ChildDepthExceeded"


def waiting_for(row: StageRecord, child_id: str) -> bool:
    """Whether the stage row waits, SUSPENDED, for the child run `child_id`."""
    state = row.suspended_state or {}
    return row.status is Status.SUSPENDED and state.get("child_run_id") == child_id


def child_error(child: RunRecord) -> str:
    """The error of a parent's stage whose child run `child` failed or was cancelled."""
    if child.status is Status.CANCELLED:
        return f"{CHILD_CANCELLED}: child run {child.id} ({child.workflow_id}) was cancelled"
    message = (child.error or {}).get("message") or "no error recorded"
    return f"{CHILD_FAILED}: child run {child.id} ({child.workflow_id}) failed: {message}"


def retried(stage: PlanStage, child: RunRecord, number: int) -> bool:
    """Whether the stage starts another child after its `number`-th one, `child`, ended
    unsuccessfully: a failed child with attempts left, unless `ChildFailed` is among the
    stage's non-retryable errors or the run nested too deep (retrying that at every level
    would start its descendants many times over). A cancelled child is never retried."""
    return (
        child.status is Status.FAILED
        and number < stage.retry.max_attempts
        and CHILD_FAILED not in stage.retry.non_retryable
        and DEPTH_EXCEEDED not in child_error(child)
    )


async def run_finished(deps: Deps, unit: Unit, run: RunRecord) -> None:
    """`Deps.on_finished`: tell a child run's parent, and cascade a failed or cancelled
    run's end to its children."""
    if run.status in (Status.FAILED, Status.CANCELLED):
        unit.after_commit(_cascade(deps, run))
    if run.parent_run_id is not None and run.parent_stage_id is not None:
        await _settle_parent(deps, unit, run, run.parent_run_id, run.parent_stage_id)


async def _settle_parent(
    deps: Deps, unit: Unit, child: RunRecord, parent_id: str, stage_id: str
) -> None:
    parent = await unit.db.get_run(parent_id)
    if parent is None or parent.status is not Status.RUNNING:
        return  # the parent ended first (cancelled, failed): the child's end is nobody's
    locked = await unit.db.update_run(parent_id, {})  # the parent's lock, before its stage
    row = await unit.db.get_stage(parent_id, stage_id)
    if locked.status is not Status.RUNNING or row is None or not waiting_for(row, child.id):
        return  # rerun, or a redelivery of the parent's job holds it: that settles it
    workflow = await run_workflow(deps.registry, unit.db, locked)
    stage = None if workflow is None else workflow.stage(stage_id)
    if workflow is None or stage is None:
        log.warning("child run %s ended; its parent's plan is unknown here", child.id)
        return
    number = int((row.suspended_state or {}).get("child_attempt", 1))
    fence = StageFence(statuses=frozenset({Status.SUSPENDED}), version=row.version)
    try:
        transition = await settle(deps, unit, locked, workflow, row, child, number, fence)
    except RefusedWrite:
        return  # the row moved on since it was read: its new owner settles it
    if transition is None:
        unit.after_commit(_transition_after(deps, workflow, parent_id))


async def settle(
    deps: Deps,
    unit: Unit,
    parent: RunRecord,
    workflow: Workflow,
    row: StageRecord,
    child: RunRecord,
    number: int,
    fence: StageFence,
) -> RunTransitionResult | None:
    """Write the outcome of the parent's stage `row` whose `number`-th child run `child`
    ended, fenced by `fence`, with `parent` locked: completed with the child's output (and
    the parent moved on), a retry queued, or failed. What the parent's transition did;
    None when there was none or it needs the parent's jobs (the caller transitions it once
    this commits). `RefusedWrite` when the fence refused the write (nothing written)."""
    stage = workflow.stage(row.stage_id)
    assert stage is not None
    now = deps.clock.now()
    if child.status is Status.COMPLETED:
        written = await _write(unit, parent, row, completion(row, parent, now), fence)
        await save_output(deps, parent, row.stage_id, child.output)
        unit.emit(completed_event(written, now))
        return await _move_on(deps, unit, workflow, parent, {row.stage_id: child.output})
    error = child_error(child)
    if retried(stage, child, number):
        retry_at = now + timedelta(milliseconds=stage.retry.delay_ms(number))
        await retry(deps, unit, parent, workflow, row, error, retry_at, fence)
        return RunTransitionResult(action="noop")
    await fail_stage(deps, unit, parent, row, error, fence)
    return await _move_on(deps, unit, workflow, parent, None)


class RefusedWrite(Exception):
    """The parent's stage row failed the fence: nothing was written (the caller decides
    whether its transaction rolls back)."""


async def _write(
    unit: Unit, parent: RunRecord, row: StageRecord, changes: StageChanges, fence: StageFence
) -> StageRecord:
    written = await unit.db.update_stage_while_running(row.id, parent.id, changes, fence=fence)
    if written is None:
        raise RefusedWrite(f"Stage {row.stage_id} of run {parent.id} moved on")
    return written


async def retry(
    deps: Deps,
    unit: Unit,
    parent: RunRecord,
    workflow: Workflow,
    row: StageRecord,
    error: str,
    retry_at: datetime,
    fence: StageFence,
) -> None:
    """Put the stage back to PENDING with `error` kept and queue its job at `retry_at`: that
    delivery starts the next child run."""
    changes: StageChanges = {
        "status": Status.PENDING,
        "error": error,
        "suspended_state": None,
        "next_poll_at": None,
        "max_wait_until": None,
    }
    written = await _write(unit, parent, row, changes, fence)
    unit.emit(_failed_event(written, error, deps.clock.now(), retry_at))
    spec = replace(
        job_spec(parent, workflow, row.stage_id), run_at=retry_at, attempts_made=written.attempt
    )

    async def enqueue() -> None:
        await deps.jobs.enqueue([spec])

    await unit.with_jobs(enqueue)
    due_later(retry_at)


async def fail_stage(
    deps: Deps, unit: Unit, parent: RunRecord, row: StageRecord, error: str, fence: StageFence
) -> StageRecord:
    """Fail the stage for good with `error` (its run fails with it, by its transition)."""
    now = deps.clock.now()
    changes: StageChanges = {
        "status": Status.FAILED,
        "completed_at": now,
        "error": error,
        "suspended_state": None,
        "next_poll_at": None,
        "max_wait_until": None,
    }
    written = await _write(unit, parent, row, changes, fence)
    unit.emit(_failed_event(written, error, now, None))
    return written


def _failed_event(
    row: StageRecord, error: str, now: datetime, retry_at: datetime | None
) -> StageFailed:
    return StageFailed(
        timestamp=now,
        workflow_run_id=row.run_id,
        stage_id=row.stage_id,
        stage_name=row.stage_name,
        error=error,
        retry_at=retry_at,
    )


async def _move_on(
    deps: Deps,
    unit: Unit,
    workflow: Workflow,
    parent: RunRecord,
    known: dict[str, object] | None,
) -> RunTransitionResult | None:
    """The locked parent's transition, with its stages read under the lock."""
    serving = replace(deps, registry=Serving(deps.registry, workflow))
    rows = await unit.db.stages_of_run(parent.id)
    try:
        return await decide_next(serving, unit, parent, rows, None, locked=True, known=known)
    except NeedJobs:
        return None


def _transition_after(deps: Deps, workflow: Workflow, run_id: str) -> AfterCommit:
    serving = replace(deps, registry=Serving(deps.registry, workflow))

    async def transition() -> None:
        try:
            await transition_run(serving, RunTransition(workflow_run_id=run_id), deps.ids.new_id())
        except Exception:  # the reaper transitions a run left with every stage finished
            log.warning("transition of run %s after its child ended failed", run_id, exc_info=True)

    return transition


def _cascade(deps: Deps, run: RunRecord) -> AfterCommit:
    """Cancel `run`'s children still active, once its end has committed (each child's
    cancel cascades to its own children in turn)."""

    async def cancel_children() -> None:
        try:
            children = await deps.persistence.children_of(run.id)
            reason = f"its parent run {run.id} is {run.status.value}"
            for child in children:
                if child.status in ACTIVE:
                    async with atomic(deps, deps.ids.new_id()) as unit:
                        await cancel_run(
                            deps, unit, RunCancel(workflow_run_id=child.id, reason=reason)
                        )
        except Exception:  # best effort: a child left running ends on its own
            log.warning("cancelling the children of run %s failed", run.id, exc_info=True)

    return cancel_children


async def depth_of(deps: Deps, run: RunRecord) -> int:
    """How deep `run` nests: 0 for a run nobody started, its parent's depth + 1 otherwise
    (read up the chain, at most `MAX_CHILD_DEPTH` + 1 runs)."""
    depth, parent_id = 0, run.parent_run_id
    while parent_id is not None and depth <= MAX_CHILD_DEPTH:
        parent = await deps.persistence.get_run(parent_id)
        depth, parent_id = depth + 1, None if parent is None else parent.parent_run_id
    return depth
