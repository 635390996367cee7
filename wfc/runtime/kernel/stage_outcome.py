"""A stage's outcome written, fenced: what phase 3 of `job.execute` shares.

`execute.py` runs a stage and decides what its outcome means for the run; this
module holds what every outcome write needs: the invocation's state
(`Execution`), the fenced write itself (`commit_outcome`: only while the run
runs and this delivery owns the stage), the failure and suspension outcomes
built on it, and `Discarded`, which rolls back a write the fence refused (at once:
`Unwritten`, then the reason read outside the transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wfc.plan import PlanStage
from wfc.runtime.commands import JobExecute, JobExecuteResult
from wfc.runtime.events import Event, StageFailed, StageSuspended, WorkflowSuspended
from wfc.runtime.kernel.deps import Deps, KeyCompletion, Unit, atomic
from wfc.runtime.kernel.invoke import (
    Failure,
    Produced,
    Report,
    Suspended,
    progress_events,
    suspend_times,
)
from wfc.runtime.kernel.rows import refresh_run_totals, save_output, write_log
from wfc.runtime.ports import Persistence
from wfc.runtime.record_builders import quick_init
from wfc.runtime.records import RunRecord, StageChanges, StageFence, StageRecord, Status


class Discarded(Exception):
    """Rolls back an outcome transaction whose write the run or the stage's fence refused:
    the run stopped being RUNNING, or this delivery no longer owns the stage."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unwritten(Exception):
    """Raised in an outcome's transaction the moment its fenced write finds nothing to
    write, so the transaction rolls back at once: on PostgreSQL the run's row stays
    locked until then (the guard locked it), and a sibling's outcome waits for it. Why
    it was refused is read after the rollback (`discarded`)."""


async def discarded(ex: Execution) -> Discarded:
    """The `Discarded` of a ghost whose transaction rolled back, saying why (read now,
    outside it, holding no lock)."""
    return Discarded(await why_refused(ex.deps.persistence, ex.run.id, ex.row.id, ex.cmd.attempt))


async def why_refused(db: Persistence, run_id: str, record_id: str, attempt: int) -> str:
    """Why a fenced outcome write found nothing to write (the rare path: read to say so)."""
    run = await db.get_run(run_id)
    if run is None or run.status is not Status.RUNNING:
        return f"Run {run_id} is {run.status.value if run else 'missing'}"
    row = next((r for r in await db.stages_of_run(run_id) if r.id == record_id), None)
    if row is None:
        return f"Stage record {record_id} of run {run_id} is gone (rerun)"
    return (
        f"Stage {row.stage_id} of run {run_id} is {row.status.value} at attempt "
        f"{row.attempt}, not this delivery's attempt {attempt}"
    )


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One `job.execute` invocation: what every phase-3 step needs."""

    deps: Deps
    run: RunRecord
    stage: PlanStage
    row: StageRecord
    cmd: JobExecute
    causation_id: str
    started_at: datetime
    report: Report
    key: KeyCompletion
    # The outputs of earlier groups as stored (`StageOutputs.held`), to hand on to a stage
    # this worker hands itself; None when it hands none.
    stored_outputs: Mapping[str, Any] | None
    known_rows: list[StageRecord]  # the run's stages as read with `run` (at its version)
    alone: bool  # the stage is the only one in its group


async def record_suspension(ex: Execution, outcome: Suspended) -> JobExecuteResult:
    now = ex.deps.clock.now()
    next_poll_at, interval_ms, max_wait_until = suspend_times(ex.stage, outcome.request, now)
    suspended: StageChanges = {
        "status": Status.SUSPENDED,
        "suspended_state": dict(outcome.request.state),
        "next_poll_at": next_poll_at,
        "poll_interval_ms": interval_ms,
        "max_wait_until": max_wait_until,
        "metrics": dict(ex.report.metrics),
    }
    result = JobExecuteResult(outcome="suspended", next_poll_at=next_poll_at)
    await commit_outcome(
        ex,
        suspended,
        result,
        StageSuspended(
            timestamp=now,
            workflow_run_id=ex.run.id,
            stage_id=ex.row.stage_id,
            stage_name=ex.row.stage_name,
            next_poll_at=next_poll_at,
        ),
        WorkflowSuspended(timestamp=now, workflow_run_id=ex.run.id, stage_id=ex.row.stage_id),
    )
    return result


async def record_failure(ex: Execution, outcome: Failure) -> JobExecuteResult:
    now = ex.deps.clock.now()
    policy, attempt = ex.stage.retry, ex.cmd.attempt
    retry_at: datetime | None = None
    if outcome.retryable and attempt < policy.max_attempts:
        retry_at = now + (outcome.retry_delay or timedelta(milliseconds=policy.delay_ms(attempt)))
    changes: StageChanges = {
        "error": outcome.error,
        "duration_ms": elapsed_ms(ex.started_at, now),
        "metrics": dict(ex.report.metrics),
    }
    if retry_at is None:
        changes["status"] = Status.FAILED
        changes["completed_at"] = now
    else:
        # Still PENDING: the group stays open while the retry is queued.
        changes["status"] = Status.PENDING
    result = JobExecuteResult(
        outcome="failed", error=outcome.error, retryable=outcome.retryable, retry_at=retry_at
    )
    await commit_outcome(
        ex,
        changes,
        result,
        StageFailed(
            timestamp=now,
            workflow_run_id=ex.run.id,
            stage_id=ex.row.stage_id,
            stage_name=ex.row.stage_name,
            error=outcome.error,
            retry_at=retry_at,
        ),
    )
    # The traceback goes with the log line: `wfc runs show` prints a failed stage's last.
    where = {"traceback": outcome.traceback} if outcome.traceback else None
    await write_log(
        ex.deps, ex.run.id, "ERROR", outcome.error, stage_record_id=ex.row.id, fields=where
    )
    return result


async def commit_outcome(
    ex: Execution, changes: StageChanges, result: JobExecuteResult, *events: Event
) -> None:
    """Write a stage's outcome with its progress and outcome events and complete the
    command's idempotency key with `result` — if the run still runs."""
    fence = StageFence.running(ex.cmd.attempt)
    try:
        async with atomic(ex.deps, ex.causation_id) as unit:
            written = await unit.db.update_stage_while_running(
                ex.row.id, ex.run.id, changes, fence=fence
            )
            if written is None:
                raise Unwritten()
            if changes.get("status") is Status.COMPLETED:
                await save_output(
                    ex.deps, ex.run, ex.row.stage_id, result.output, produced_text(ex)
                )
                await refresh_run_totals(unit, ex.run.id, ex.report.metrics)
            emit_outcome(ex, unit, *events)
            await ex.key.complete(unit.db, result)
    except Unwritten:
        raise await discarded(ex) from None


def produced_text(ex: Execution) -> bytes | None:
    """The JSON text of the output the execution produced, when it was written as it was
    checked (`Produced.text`): stored as it is, not encoded again."""
    outcome = ex.report.outcome
    return outcome.text if isinstance(outcome, Produced) else None


def emit_outcome(ex: Execution, unit: Unit, *events: Event) -> None:
    """The stage's progress events, then its outcome events, in this unit's outbox append."""
    now = ex.deps.clock.now()
    for event in [*progress_events(ex.run.id, ex.row.stage_id, ex.report, now), *events]:
        unit.emit(event)


def elapsed_ms(start: datetime, end: datetime) -> int:
    return max(int((end - start) / timedelta(milliseconds=1)), 0)
