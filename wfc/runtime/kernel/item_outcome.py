"""An item's final outcome written, fenced: what a delivery and a poll of an item share.

An item ends either in the job that ran it (`wfc.runtime.kernel.items`) or in
the poll that found its suspended work ready (`wfc.runtime.kernel.item_poll`);
both record the end the same way, here. The outcome's transaction locks the
run and the stage's row (the order every writer of a run takes them in),
checks the stage is still at the generation the item was queued for (a rerun
moves it on), writes the item's row through the writer's fence (`Writer`),
counts it on the stage's row and queues the next item. The item that finishes
the pass gathers the results and completes (or fails) the stage, and runs the
run's transition in the same transaction. A fence that does not hold raises
`Refused`, and the caller rolls back.

Apart from `items` as `stage_outcome` is apart from `execute`: running an item
and deciding what its delivery answers is one job, the fenced write of how it
ended (and what that ends for its stage) is another, with two callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wfc.errors import RecordNotFoundError
from wfc.plan import ItemFailure, PlanStage
from wfc.runtime.commands import JobExecuteResult, RunTransitionResult
from wfc.runtime.events import Event, StageCompleted, StageFailed, StageProgress
from wfc.runtime.job_records import JobSpec
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.kernel.invoke import Failure, Produced, Report, Suspended
from wfc.runtime.kernel.mapping import gathered, next_items, reports_progress
from wfc.runtime.kernel.rows import output_key, save_output, write_log
from wfc.runtime.kernel.stage_outcome import elapsed_ms
from wfc.runtime.kernel.transition import NeedJobs, decide_next
from wfc.runtime.records import (
    TERMINAL,
    ItemChanges,
    ItemRecord,
    LogLevel,
    RunRecord,
    StageChanges,
    StageFence,
    StageRecord,
    Status,
)
from wfc.runtime.storable import storable_text, unstorable_part
from wfc.runtime.workflow import Workflow


class Refused(Exception):
    """The outcome's fence did not hold: roll back, the result is a ghost's."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Writer:
    """Who writes an item's outcome: the fence its row must pass, the stage's generation
    it was queued for, and the leased job to complete with it (a delivery's, not a poll's)."""

    fence: StageFence
    generation: int
    config: dict[str, Any]  # the run's, for the jobs of the items it queues
    concurrency_key: str | None = None  # the job's, carried on to them likewise
    job_id: str | None = None
    attempt: int | None = None


async def record_outcome(
    deps: Deps,
    unit: Unit,
    workflow: Workflow,
    run: RunRecord,
    stage: PlanStage,
    record_id: str,
    item: ItemRecord,
    writer: Writer,
    report: Report,
    outcome: Produced | Failure,
    started_at: datetime,
) -> JobExecuteResult:
    """The item's final outcome, counted on the stage; the stage's end when it is the last.
    Raises `Refused` (the caller rolls back) when the run, the stage or the item moved on."""
    now = deps.clock.now()
    try:
        locked = await unit.db.lock_run_and_update_stage(run.id, record_id, {}, data=False)
    except RecordNotFoundError:  # the stage's row was replaced by a rerun
        raise Refused(f"Stage {stage.id}'s row of run {run.id} is gone") from None
    raise_unless(locked is not None, f"Run {run.id} is no longer RUNNING")
    assert locked is not None
    run, row = locked
    raise_unless(
        row.status is Status.RUNNING and row.generation == writer.generation,
        f"Stage {stage.id} is {row.status.value} at generation {row.generation}",
    )
    completed = isinstance(outcome, Produced)
    changes: ItemChanges = {
        "status": Status.COMPLETED if completed else Status.FAILED,
        "completed_at": now,
        "duration_ms": elapsed_ms(started_at, now),
        "metrics": dict(report.metrics),
        "output": outcome.output if isinstance(outcome, Produced) else None,
        "error": outcome.error if isinstance(outcome, Failure) else None,
    }
    written = await unit.db.update_item(item.id, changes, fence=writer.fence)
    raise_unless(written is not None, f"Item {item.item_index} moved on")
    if isinstance(outcome, Produced):
        result = JobExecuteResult(outcome="completed", output=outcome.output)
    else:
        result = JobExecuteResult(outcome="failed", error=outcome.error, retryable=False)
    assert stage.map is not None
    stop = not completed and stage.map.on_item_failure is ItemFailure.FAIL
    done = row.items_done + completed
    failed = row.items_failed + (not completed)
    counters: StageChanges = {"items_done": done, "items_failed": failed}
    specs: list[JobSpec] = []
    if not stop:
        counters["items_next"], specs = await next_items(
            deps, run, workflow, row, row.generation, writer.config, writer.concurrency_key
        )
    if completed and unit.shared and writer.job_id is not None:
        unit.completing = writer.job_id
    if specs:

        async def enqueue() -> None:
            await deps.jobs.enqueue(specs, completing=unit.take_completing())

        await unit.with_jobs(enqueue)
    events: list[Event] = []
    if stop:
        # Its items still open end with it: one a delivery is running now would otherwise
        # stay RUNNING in the failed stage (its outcome is refused), and in the run's end.
        await unit.db.cancel_items(run.id, stage.id)
        error = f"Item {item.item_index} failed: {result.error}"
        counters |= _ended(row, now, Status.FAILED) | {"error": error}
        events.append(_stage_failed(run, row, now, error))
    elif done + failed >= row.items_total:
        output, metrics = await gathered(unit, run, stage)
        await save_output(deps, run, stage.id, output)
        counters |= _ended(row, now, Status.COMPLETED) | {
            "output_ref": output_key(run, stage.id),
            "metrics": metrics,
        }
        events.append(_stage_completed(run, row, now))
    else:
        events.extend(_progress(run, row, now, done, failed, item.item_index))
    updated = await unit.db.update_stage(row.id, counters)
    for event in events:
        unit.emit(event)
    # While the stage runs, its run has nothing to decide: say so, or the host would run a
    # transition (a transaction reading the whole run) after every item.
    transition: RunTransitionResult | None = RunTransitionResult(action="noop")
    if updated.status in TERMINAL:
        full = await unit.db.get_run(run.id)  # the last item: the run, whole, for what's next
        assert full is not None
        run = full
        rows = await unit.db.stages_of_run(run.id)
        try:
            transition = await decide_next(deps, unit, run, rows, None, locked=True)
        except NeedJobs:
            transition = None  # a stage failed: the host's own transition reads the jobs
    job_completed = False
    job_id = unit.take_completing()
    if job_id is not None:
        try:
            await deps.jobs.complete(job_id, attempt=writer.attempt)
            job_completed = True
        except RecordNotFoundError:
            job_completed = False
    elif completed and unit.shared and writer.job_id is not None:
        job_completed = True  # completed with the next item's jobs
    return result.model_copy(update={"transition": transition, "job_completed": job_completed})


def raise_unless(condition: bool, reason: str) -> None:
    """Roll back the outcome's transaction when its fence does not hold."""
    if not condition:
        raise Refused(reason)


def _ended(row: StageRecord, now: datetime, status: Status) -> StageChanges:
    started = row.started_at or row.created_at
    return {"status": status, "completed_at": now, "duration_ms": elapsed_ms(started, now)}


def _stage_completed(run: RunRecord, row: StageRecord, now: datetime) -> StageCompleted:
    started = row.started_at or row.created_at
    return StageCompleted(
        timestamp=now,
        workflow_run_id=run.id,
        stage_id=row.stage_id,
        stage_name=row.stage_name,
        duration_ms=elapsed_ms(started, now),
    )


def _stage_failed(run: RunRecord, row: StageRecord, now: datetime, error: str) -> StageFailed:
    return StageFailed(
        timestamp=now,
        workflow_run_id=run.id,
        stage_id=row.stage_id,
        stage_name=row.stage_name,
        error=error,
        retry_at=None,
    )


def _progress(
    run: RunRecord, row: StageRecord, now: datetime, done: int, failed: int, index: int
) -> list[StageProgress]:
    """A `stage:progress` event about every twentieth of the items, not one per item: a
    map of 10,000 items writes 20 events, not 10,000."""
    total = row.items_total
    finished = done + failed
    if not reports_progress(index, total):
        return []
    return [
        StageProgress(
            timestamp=now,
            workflow_run_id=run.id,
            stage_id=row.stage_id,
            progress=finished / total if total else 1.0,
            message=f"{finished} of {total} items",
            details={"items_done": done, "items_failed": failed, "items_total": total},
        )
    ]


def storable_item_report(stage: PlanStage, index: int, report: Report) -> Report:
    """`report` as a row can hold it, before a delivery or a poll writes it: the error's
    text made storable, and an output or suspend state no database can store turned into
    a failure that says so (rather than a write that fails on one store only)."""
    outcome = report.outcome
    if isinstance(outcome, Failure):
        report.outcome = Failure(
            error=storable_text(outcome.error),
            retryable=outcome.retryable,
            retry_delay=outcome.retry_delay,
            traceback=outcome.traceback,
        )
    elif isinstance(outcome, Produced | Suspended):
        kept = outcome.output if isinstance(outcome, Produced) else outcome.request.state
        problem = unstorable_part(kept)
        if problem is not None:
            what = "an output" if isinstance(outcome, Produced) else "a suspend state"
            report.outcome = Failure(
                error=f"UnstorableOutput: Item {index} of stage {stage.id} returned {what} "
                f"no database can store ({problem})",
                retryable=False,
            )
    return report


async def log_item_failure(
    deps: Deps,
    run_id: str,
    stage_record_id: str | None,
    index: int,
    level: LogLevel,
    failure: Failure,
) -> None:
    """The log line of an item's failed attempt (WARN when it will be retried), on its
    stage's row, with the item's index and, when its code raised, the traceback: as a
    stage's failed attempt keeps it, so `wfc runs show` can say where an item raised."""
    fields: dict[str, Any] = {"item": index}
    if failure.traceback:
        fields["traceback"] = failure.traceback
    message = f"item {index}: {failure.error}"
    await write_log(deps, run_id, level, message, stage_record_id=stage_record_id, fields=fields)
