"""`stage.pollSuspended` (spec §4.8): check suspended stages whose poll time has come.

Each due stage is claimed before it is checked: one write moves its next poll
past the check (`Persistence.claim_suspended_stages`), so no other poller
checks it meanwhile, and its version at the claim fences every write the
check leads to (`StageFence.polled`). A poller that lost the stage (it was
cancelled, or the claim ran out and another poller took it) writes nothing:
its answer is a ghost. `check_completion` runs outside any transaction.

A stage that is ready is completed in the same transaction as its run's
transition (`decide_next`), as `job.execute` does for a completed stage, so
no crash between the two can leave a run RUNNING with every stage done. A
stage whose run stopped being RUNNING is cancelled rather than resumed.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

from wfc.errors import RecordNotFoundError, StaleVersionError
from wfc.observability import observer
from wfc.runtime.commands import StagePollSuspended, StagePollSuspendedResult
from wfc.runtime.events import StageCompleted, StageFailed
from wfc.runtime.kernel.deps import Deps, Unit, atomic
from wfc.runtime.kernel.execute import storable_report
from wfc.runtime.kernel.invoke import (
    FALLBACK_POLL,
    Failure,
    NotYet,
    Produced,
    Report,
    progress_events,
    run_check,
)
from wfc.runtime.kernel.item_poll import poll_item
from wfc.runtime.kernel.rows import (
    STAGE_FAILED,
    fail_run,
    output_key,
    refresh_run_totals,
    save_output,
    write_log,
)
from wfc.runtime.kernel.transition import NeedJobs, decide_next
from wfc.runtime.records import RunRecord, StageChanges, StageFence, StageRecord, Status
from wfc.runtime.storable import storable_text, unstorable_part

SUSPEND_TIMEOUT = "SUSPEND_TIMEOUT"

log = logging.getLogger("wfc.kernel")


class _Lost(Exception):
    """The fenced write found the run stopped or the stage no longer this poller's."""


async def poll_suspended(deps: Deps, cmd: StagePollSuspended) -> StagePollSuspendedResult:
    """Claim and check up to `max_checks` due suspended stages; say which runs resumed."""
    now = deps.clock.now()
    until = now + timedelta(milliseconds=cmd.claim_ms)
    plans = deps.registry.plans()  # a run of another plan is its own workers' to poll
    due = await deps.persistence.claim_suspended_stages(
        now, until, cmd.max_checks, run_id=cmd.workflow_run_id, plans=plans
    )
    items = None
    if not due:  # the items are claimed next either way; with none, nothing is left to do
        items = await deps.persistence.claim_suspended_items(
            now, until, cmd.max_checks, run_id=cmd.workflow_run_id, plans=plans
        )
        if not items:  # most ticks: answered without the tallies below
            return StagePollSuspendedResult()
    verdicts = Counter[str]()
    resumed_runs: list[str] = []
    next_due: list[datetime] = []
    for row in due:
        verdict, next_poll_at = await _poll_one(deps, row)
        verdicts[verdict] += 1
        if verdict == "resumed" and row.run_id not in resumed_runs:
            resumed_runs.append(row.run_id)
        if next_poll_at is not None:
            next_due.append(next_poll_at)
    if items is None:
        items = await deps.persistence.claim_suspended_items(
            now,
            until,
            max(cmd.max_checks - len(due), 0) or 1,
            run_id=cmd.workflow_run_id,
            plans=plans,
        )
    for item in items:
        verdict, next_poll_at = await poll_item(deps, item)
        verdicts[verdict] += 1
        if verdict == "resumed" and item.run_id not in resumed_runs:
            resumed_runs.append(item.run_id)
        if next_poll_at is not None:
            next_due.append(next_poll_at)
    return StagePollSuspendedResult(
        checked=len(due) + len(items),
        resumed=verdicts["resumed"],
        failed=verdicts["failed"],
        resumed_workflow_run_ids=resumed_runs,
        next_due_at=min(next_due, default=None),
    )


async def _poll_one(deps: Deps, row: StageRecord) -> tuple[str, datetime | None]:
    """Check one claimed stage and write what the check says; the verdict, and when the
    stage is due again if it still waits."""
    fence = StageFence.polled(row.version)
    run = await deps.persistence.get_run(row.run_id)
    if run is None:
        return "skipped", None
    if run.status is not Status.RUNNING:
        await _cancel_stage(deps, row, fence)
        return "skipped", None
    with observer().stage_check(run, row.stage_id, row.attempt) as attempt:
        report, row = await _check(deps, run, row)
        attempt.ended(_check_outcome(report.outcome), getattr(report.outcome, "error", None))
    now = deps.clock.now()
    code = STAGE_FAILED
    if (
        isinstance(report.outcome, NotYet)
        and row.max_wait_until is not None
        and now >= row.max_wait_until
    ):
        deadline = row.max_wait_until.isoformat()
        error = f"Stage {row.stage_id} exceeded max wait ({deadline}) while suspended"
        report = replace(report, outcome=Failure(error=error, retryable=False))
        code = SUSPEND_TIMEOUT
    try:
        async with atomic(deps, deps.ids.new_id()) as unit:
            verdict, next_poll_at = await _persist(deps, unit, run, row, fence, report, code)
    except _Lost:
        current = await deps.persistence.get_run(run.id)
        if current is None or current.status is not Status.RUNNING:
            await _cancel_stage(deps, row, fence)
        else:
            log.warning(
                "ghost poll of stage %s of run %s: another poller or a cancel took it",
                row.stage_id,
                run.id,
            )
        return "skipped", None
    if verdict != "waiting":
        await _close_parked_job(deps, row, report.outcome)
    if isinstance(report.outcome, Failure):  # as a failed attempt's: `wfc runs show` prints it
        where = {"traceback": report.outcome.traceback} if report.outcome.traceback else None
        await write_log(
            deps, run.id, "ERROR", report.outcome.error, stage_record_id=row.id, fields=where
        )
    return verdict, next_poll_at


def _check_outcome(outcome: object) -> str:
    """How a check ended, for the observability hook: waiting, completed or failed."""
    if isinstance(outcome, NotYet):
        return "waiting"
    return "failed" if isinstance(outcome, Failure) else "completed"


async def _check(deps: Deps, run: RunRecord, row: StageRecord) -> tuple[Report, StageRecord]:
    """Call the stage's `check_completion`; the report, and the row with the state the
    method kept (it may change its state in place, to count polls or keep a cursor)."""
    workflow = deps.registry.get(run.workflow_id)
    if workflow is None:
        failure = Failure(error=f"Workflow {run.workflow_id} not found in registry")
        return Report(outcome=failure), row
    state = dict(row.suspended_state or {})
    report = storable_report(row.stage_id, await run_check(deps, workflow, run, row, state))
    problem = unstorable_part(state) if isinstance(report.outcome, NotYet) else None
    if problem is not None:
        error = (
            f"UnstorableOutput: Stage {row.stage_id} kept a state no database can store ({problem})"
        )
        report = replace(report, outcome=Failure(error=error, retryable=False))
    return report, replace(row, suspended_state=state)


async def _persist(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    row: StageRecord,
    fence: StageFence,
    report: Report,
    code: str,
) -> tuple[str, datetime | None]:
    now = deps.clock.now()
    outcome = report.outcome
    for event in progress_events(run.id, row.stage_id, report, now):
        unit.emit(event)
    if isinstance(outcome, NotYet):
        interval = outcome.next_check_in or (
            timedelta(milliseconds=row.poll_interval_ms) if row.poll_interval_ms else FALLBACK_POLL
        )
        waiting: StageChanges = {
            "next_poll_at": now + interval,
            "suspended_state": row.suspended_state,
        }
        if await unit.db.update_stage_while_running(row.id, run.id, waiting, fence=fence) is None:
            raise _Lost()
        return "waiting", now + interval
    if isinstance(outcome, Produced):
        await _complete(deps, unit, run, row, fence, report, outcome.output)
        return "resumed", None
    assert isinstance(outcome, Failure)
    await _fail_stage_and_run(deps, unit, row, fence, storable_text(outcome.error), code)
    return "failed", None


async def _complete(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    row: StageRecord,
    fence: StageFence,
    report: Report,
    output: object,
) -> None:
    """Complete the stage and transition its run, in this one transaction."""
    now = deps.clock.now()
    started = row.started_at or row.created_at
    duration_ms = max(int((now - started) / timedelta(milliseconds=1)), 0)
    metrics = {**(row.metrics or {}), **report.metrics}
    completed: StageChanges = {
        "status": Status.COMPLETED,
        "completed_at": now,
        "duration_ms": duration_ms,
        "output_ref": output_key(run, row.stage_id),
        "next_poll_at": None,
        "metrics": metrics,
    }
    locked_run = await _lock_and_write(unit, row, completed, fence)
    await save_output(deps, run, row.stage_id, output)  # once the fence passed, never before
    rows = await unit.db.stages_of_run(run.id)
    locked_run = await refresh_run_totals(unit, run.id, metrics, rows) or locked_run
    unit.emit(
        StageCompleted(
            timestamp=now,
            workflow_run_id=run.id,
            stage_id=row.stage_id,
            stage_name=row.stage_name,
            duration_ms=duration_ms,
        )
    )
    try:
        known = {row.stage_id: output}
        await decide_next(deps, unit, locked_run, rows, None, locked=True, known=known)
    except NeedJobs:
        pass  # a failed sibling: the host's transition of a resumed run reads the jobs


async def _fail_stage_and_run(
    deps: Deps, unit: Unit, row: StageRecord, fence: StageFence, error: str, code: str
) -> None:
    now = deps.clock.now()
    failed: StageChanges = {
        "status": Status.FAILED,
        "completed_at": now,
        "error": error,
        "next_poll_at": None,
    }
    run = await _lock_and_write(unit, row, failed, fence)
    unit.emit(
        StageFailed(
            timestamp=now,
            workflow_run_id=run.id,
            stage_id=row.stage_id,
            stage_name=row.stage_name,
            error=error,
        )
    )
    await fail_run(deps, unit, run, code=code, message=error, stage_id=row.stage_id)


async def _lock_and_write(
    unit: Unit, row: StageRecord, changes: StageChanges, fence: StageFence
) -> RunRecord:
    """Lock the stage's run and write `changes` to it if this poll still owns it; the
    locked run. `_Lost` (rolling the transaction back) when it does not."""
    locked = await unit.db.lock_run_and_update_stage(row.run_id, row.id, changes, fence=fence)
    if locked is None:
        raise _Lost()
    return locked[0]


async def _cancel_stage(deps: Deps, row: StageRecord, fence: StageFence) -> None:
    """Cancel a claimed stage whose run is over — unless someone wrote it since the claim."""
    assert fence.version is not None
    cancelled: StageChanges = {
        "status": Status.CANCELLED,
        "completed_at": deps.clock.now(),
        "next_poll_at": None,
    }
    try:
        await deps.persistence.update_stage(row.id, cancelled, expected_version=fence.version)
    except (StaleVersionError, RecordNotFoundError):
        pass  # cancelled by the run's own cancel, or rerun: nothing left to do


async def _close_parked_job(deps: Deps, row: StageRecord, outcome: object) -> None:
    """Close the parked job of a resumed or failed stage (best effort: it is never dequeued)."""
    try:
        for job in await deps.jobs.jobs_of_run(row.run_id):
            if job.stage_id != row.stage_id or job.status is not Status.SUSPENDED:
                continue
            if isinstance(outcome, Failure):
                await deps.jobs.fail(job.id, outcome.error, retry_at=None)
            else:
                await deps.jobs.complete(job.id)
    except Exception:  # a parked job left behind is harmless
        pass
