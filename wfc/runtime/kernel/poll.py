"""`stage.pollSuspended` (spec §4.8): check suspended stages whose poll time has come.

`check_completion` runs outside any transaction; each stage's outcome is
written in its own transaction that first claims the run by version, so two
pollers (or a poller and a cancel) never both act on one run. A stage whose
run stopped being RUNNING is cancelled rather than resumed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

from wfc.errors import StaleVersionError
from wfc.runtime.commands import StagePollSuspended, StagePollSuspendedResult
from wfc.runtime.events import StageCompleted, StageFailed
from wfc.runtime.kernel.deps import Deps, Unit, atomic
from wfc.runtime.kernel.invoke import (
    Failure,
    NotYet,
    Produced,
    Report,
    progress_events,
    run_check,
)
from wfc.runtime.kernel.rows import STAGE_FAILED, fail_run, refresh_run_totals, save_output
from wfc.runtime.records import RunRecord, StageRecord, Status

FALLBACK_POLL = timedelta(seconds=60)
SUSPEND_TIMEOUT = "SUSPEND_TIMEOUT"


class _Abandon(Exception):
    """The run changed under the poll: roll back, cancel the stage if the run is gone."""


async def poll_suspended(deps: Deps, cmd: StagePollSuspended) -> StagePollSuspendedResult:
    """Check up to `max_checks` due suspended stages; report which runs to transition."""
    due = await deps.persistence.suspended_stages_due(deps.clock.now(), cmd.max_checks)
    verdicts = Counter[str]()
    resumed_runs: list[str] = []
    for row in due:
        verdict = await _poll_one(deps, row)
        verdicts[verdict] += 1
        if verdict == "resumed" and row.run_id not in resumed_runs:
            resumed_runs.append(row.run_id)
    return StagePollSuspendedResult(
        checked=len(due),
        resumed=verdicts["resumed"],
        failed=verdicts["failed"],
        resumed_workflow_run_ids=resumed_runs,
    )


async def _poll_one(deps: Deps, row: StageRecord) -> str:
    run = await deps.persistence.get_run(row.run_id)
    if run is None:
        return "skipped"
    if run.status is not Status.RUNNING:
        await _cancel_stage(deps, row)
        return "skipped"
    workflow = deps.registry.get(run.workflow_id)
    if workflow is None:
        report = Report(outcome=Failure(error=f"Workflow {run.workflow_id} not found in registry"))
    else:
        state = dict(row.suspended_state or {})
        report = await run_check(deps, workflow, run, row, state)
        row = replace(row, suspended_state=state)
    outcome = report.outcome
    now = deps.clock.now()
    code = STAGE_FAILED
    if isinstance(outcome, NotYet) and row.max_wait_until is not None and now >= row.max_wait_until:
        deadline = row.max_wait_until.isoformat()
        report = Report(
            outcome=Failure(
                error=f"Stage {row.stage_id} exceeded max wait ({deadline}) while suspended",
                retryable=False,
            ),
            progress=report.progress,
            metrics=report.metrics,
        )
        code = SUSPEND_TIMEOUT
    key = None
    if isinstance(report.outcome, Produced):
        key = await save_output(deps, run, row.stage_id, report.outcome.output)
    try:
        async with atomic(deps, deps.ids.new_id()) as unit:
            claimed = await _claim(unit, run)
            verdict = await _persist(deps, unit, claimed, row, report, key, code)
    except _Abandon:
        # Lost a race: cancel the stage only if its run is over, else leave it for the next poll.
        current = await deps.persistence.get_run(run.id)
        if current is None or current.status is not Status.RUNNING:
            await _cancel_stage(deps, row)
        return "skipped"
    if verdict != "waiting":
        await _close_parked_job(deps, row, report.outcome)
    return verdict


async def _claim(unit: Unit, run: RunRecord) -> RunRecord:
    current = await unit.db.get_run(run.id)
    if current is None or current.status is not Status.RUNNING:
        raise _Abandon()
    try:
        return await unit.db.update_run(run.id, {}, expected_version=current.version)
    except StaleVersionError:
        raise _Abandon() from None


async def _persist(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    row: StageRecord,
    report: Report,
    key: str | None,
    code: str,
) -> str:
    now = deps.clock.now()
    outcome = report.outcome
    for event in progress_events(run.id, row.stage_id, report, now):
        unit.emit(event)
    if isinstance(outcome, NotYet):
        interval = outcome.next_check_in or (
            timedelta(milliseconds=row.poll_interval_ms) if row.poll_interval_ms else FALLBACK_POLL
        )
        await unit.db.update_stage(
            row.id, {"next_poll_at": now + interval, "suspended_state": row.suspended_state}
        )
        return "waiting"
    if isinstance(outcome, Produced):
        started = row.started_at or row.created_at
        duration_ms = max(int((now - started) / timedelta(milliseconds=1)), 0)
        await unit.db.update_stage(
            row.id,
            {
                "status": Status.COMPLETED,
                "completed_at": now,
                "duration_ms": duration_ms,
                "output_ref": key,
                "next_poll_at": None,
                "metrics": {**(row.metrics or {}), **report.metrics},
            },
        )
        await refresh_run_totals(unit, run.id, {**(row.metrics or {}), **report.metrics})
        unit.emit(
            StageCompleted(
                timestamp=now,
                workflow_run_id=run.id,
                stage_id=row.stage_id,
                stage_name=row.stage_name,
                duration_ms=duration_ms,
            )
        )
        return "resumed"
    assert isinstance(outcome, Failure)
    await _fail_stage_and_run(deps, unit, run, row, outcome.error, code, now)
    return "failed"


async def _fail_stage_and_run(
    deps: Deps, unit: Unit, run: RunRecord, row: StageRecord, error: str, code: str, now: datetime
) -> None:
    await unit.db.update_stage(
        row.id,
        {"status": Status.FAILED, "completed_at": now, "error": error, "next_poll_at": None},
    )
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


async def _cancel_stage(deps: Deps, row: StageRecord) -> None:
    async with atomic(deps, deps.ids.new_id()) as unit:
        current = await unit.db.get_stage(row.run_id, row.stage_id)
        if current is not None and current.status is Status.SUSPENDED:
            await unit.db.update_stage(
                current.id,
                {
                    "status": Status.CANCELLED,
                    "completed_at": deps.clock.now(),
                    "next_poll_at": None,
                },
            )


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
