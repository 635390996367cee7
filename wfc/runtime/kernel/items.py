"""`job.execute` for one item of a mapped stage.

An item runs as a stage does (`wfc.runtime.kernel.execute`), on a row of its own:
a delivery starts the item at its attempt (`StageFence.startable`), the body
runs outside any transaction, and the outcome is written only while the item
is still RUNNING at that attempt (`StageFence.running`) — so a worker paused
past its lease can neither overwrite nor count an item another delivery ran.

The outcome's transaction locks the run and the stage's row (the order every
writer of a run takes them in), checks the stage is still at the generation
the item was queued for (a rerun moves it on), writes the item's row, counts
it on the stage's row and queues the next item. The item that finishes the
pass gathers the results and completes (or fails) the stage, and runs the
run's transition in the same transaction. Nothing here reads or writes
another item's row, except that one gather.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wfc.errors import RecordNotFoundError
from wfc.observability import attempt_opened
from wfc.plan import ItemFailure, PlanStage
from wfc.runtime.commands import JobExecute, JobExecuteResult, RunTransitionResult
from wfc.runtime.events import Event, StageCompleted, StageFailed, StageProgress
from wfc.runtime.kernel.deps import Deps, KeyCompletion, Unit, atomic
from wfc.runtime.kernel.invoke import (
    Failure,
    MapItem,
    Produced,
    Report,
    Suspended,
    run_execute,
    suspend_times,
)
from wfc.runtime.kernel.item_hand_on import hand_on
from wfc.runtime.kernel.mapping import (
    gathered,
    index_at,
    item_spec,
    item_value,
    next_items,
    reports_progress,
)
from wfc.runtime.kernel.rows import (
    load_outputs,
    output_key,
    save_output,
    stage_prefix,
    write_log,
)
from wfc.runtime.kernel.transition import NeedJobs, decide_next
from wfc.runtime.records import (
    TERMINAL,
    ItemChanges,
    ItemRecord,
    JobSpec,
    LogLevel,
    RunRecord,
    StageChanges,
    StageFence,
    StageRecord,
    Status,
)
from wfc.runtime.storable import storable_text, unstorable_part
from wfc.runtime.workflow import Workflow

log = logging.getLogger("wfc.kernel")

_STAGE_RUNNING = StageFence(statuses=frozenset({Status.RUNNING}))


class Refused(Exception):
    """The outcome's fence did not hold: roll back, the result is a ghost's."""


def _ghost(reason: str) -> JobExecuteResult:
    log.warning("ghost item: %s — result discarded", reason)
    return JobExecuteResult(
        outcome="failed", ghost=True, retryable=False, error=f"{reason} — result discarded"
    )


async def execute_item(
    deps: Deps,
    workflow: Workflow,
    stage: PlanStage,
    cmd: JobExecute,
    causation_id: str,
    key: KeyCompletion,
) -> JobExecuteResult:
    """Run item `cmd.item` of the mapped `stage` and record its outcome, fenced."""
    # The run's state only: its input may be the list itself, and no item needs it. None
    # read for an item the one before it handed on here (`item_hand_on`).
    warm = (
        None
        if cmd.item is None
        else deps.warm.take(cmd.workflow_run_id, stage.id, cmd.attempt, cmd.item)
    )
    found = (
        (warm.run, warm.rows)
        if warm is not None
        else await deps.persistence.run_with_stages(cmd.workflow_run_id, data=False)
    )
    if found is None:
        raise RecordNotFoundError("WorkflowRun", cmd.workflow_run_id)
    run, rows = found
    row = next((r for r in rows if r.stage_id == stage.id), None)
    if cmd.item is None:
        return await _requeue_items(
            deps, workflow, run, row, causation_id, cmd.config, cmd.concurrency_key
        )
    where = f"item {cmd.item} of stage {stage.id} of run {run.id}"
    if run.status is not Status.RUNNING:
        return _ghost(f"Run {run.id} is {run.status.value}: {where}")
    if row is None or row.status is not Status.RUNNING or row.generation != cmd.generation:
        shown = "gone" if row is None else f"{row.status.value} at generation {row.generation}"
        return _ghost(f"Stage {stage.id} is {shown}: {where}")
    if workflow.plan.fingerprint != run.plan_fingerprint:
        # The run was adopted by another plan after this job was leased: its workers run it.
        spec = item_spec(
            run,
            workflow,
            stage.id,
            cmd.item,
            cmd.generation,
            cmd.attempt,
            config=cmd.config,
            concurrency_key=cmd.concurrency_key,
        )
        await deps.jobs.enqueue([spec])
        return _ghost(f"Run {run.id} now runs on plan {run.plan_fingerprint}: {where}")
    attempt_opened(run, cmd.item)
    now = deps.clock.now()
    started = await _start(deps, run, stage, cmd, now)
    if not isinstance(started, ItemRecord):
        return started
    report = await _run_body(deps, workflow, run, row, stage, cmd, rows)
    outcome = report.outcome
    if isinstance(outcome, Suspended):
        return await _record_suspension(deps, run, stage, started, cmd, report, outcome)
    if isinstance(outcome, Failure) and outcome.retryable:
        retry_at = _retry_at(stage, cmd.attempt, outcome, deps.clock.now())
        if retry_at is not None:
            return await _record_retry(deps, run, row.id, started, cmd, outcome, now, retry_at)
    assert isinstance(outcome, Produced | Failure), f"execute cannot end with {outcome}"
    if isinstance(outcome, Produced):
        handed = await hand_on(
            deps, workflow, run, rows, row, stage, cmd, key, started, report, outcome, now
        )
        if handed is not None:
            return handed
    try:
        async with atomic(deps, causation_id) as unit:
            writer = Writer(
                fence=StageFence.running(cmd.attempt),
                generation=cmd.generation,
                config=cmd.config,
                concurrency_key=cmd.concurrency_key,
                job_id=cmd.job_id,
                attempt=cmd.attempt,
            )
            result = await record_outcome(
                deps, unit, workflow, run, stage, row.id, started, writer, report, outcome, now
            )
            await key.complete(unit.db, result)
    except Refused as refused:
        return _ghost(f"{refused}: {where}")
    if isinstance(outcome, Failure):
        await log_item_failure(deps, run.id, row.id, cmd.item, "ERROR", outcome)
    return result


async def _start(
    deps: Deps, run: RunRecord, stage: PlanStage, cmd: JobExecute, now: datetime
) -> ItemRecord | JobExecuteResult:
    """The item's row, started for this delivery; or the answer when it cannot start."""
    assert cmd.item is not None
    create = ItemRecord(
        id=deps.ids.new_id(),
        run_id=run.id,
        stage_id=stage.id,
        item_index=cmd.item,
        status=Status.RUNNING,
        created_at=now,
        updated_at=now,
        generation=cmd.generation,
        attempt=cmd.attempt,
        started_at=now,
    )
    changes: ItemChanges = {
        "status": Status.RUNNING,
        "attempt": cmd.attempt,
        "generation": cmd.generation,
        "started_at": now,
    }
    started = await deps.persistence.start_item(
        create, changes, StageFence.item_startable(cmd.attempt, cmd.generation)
    )
    if started is not None:
        return started
    current = next(
        (
            item
            for item in await deps.persistence.items_of_stage(run.id, stage.id)
            if item.item_index == cmd.item
        ),
        None,
    )
    if current is not None and current.status is Status.COMPLETED:
        return JobExecuteResult(outcome="completed", output=current.output)
    if current is not None and current.status in TERMINAL:
        return JobExecuteResult(outcome="failed", error=current.error, retryable=False)
    shown = "gone" if current is None else f"{current.status.value} at {current.attempt}"
    return _ghost(f"Item {cmd.item} of stage {stage.id} is {shown}, not startable")


async def _run_body(
    deps: Deps,
    workflow: Workflow,
    run: RunRecord,
    row: StageRecord,
    stage: PlanStage,
    cmd: JobExecute,
    rows: list[StageRecord],
) -> Report:
    assert cmd.item is not None
    if cmd.attempt > stage.retry.max_attempts:
        error = (
            f"AttemptsExhausted: Item {cmd.item} of stage {stage.id} was delivered "
            f"{cmd.attempt} times (max {stage.retry.max_attempts}): its attempts were "
            "interrupted (a worker lost, a lease expired)"
        )
        return Report(outcome=Failure(error=error, retryable=False))
    value = await item_value(deps, run, stage.id, cmd.item, cmd.generation)
    needed = [r for r in rows if r.stage_id in stage.needs]
    outputs = await load_outputs(deps, needed)
    prefix = (
        f"{stage_prefix(run, stage.id)}item-{cmd.item}/artifacts/{cmd.generation}.{cmd.attempt}/"
    )
    item = MapItem(index=cmd.item, count=row.items_total, value=value, artifact_prefix=prefix)
    async with deps.pinning.released():
        report = await run_execute(deps, workflow, run, row, outputs, cmd.config, cmd.attempt, item)
    return storable_item_report(stage, cmd.item, report)


def storable_item_report(stage: PlanStage, index: int, report: Report) -> Report:
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


def _retry_at(stage: PlanStage, attempt: int, failure: Failure, now: datetime) -> datetime | None:
    if attempt >= stage.retry.max_attempts:
        return None
    delay = failure.retry_delay or timedelta(milliseconds=stage.retry.delay_ms(attempt))
    return now + delay


async def _record_suspension(
    deps: Deps,
    run: RunRecord,
    stage: PlanStage,
    item: ItemRecord,
    cmd: JobExecute,
    report: Report,
    outcome: Suspended,
) -> JobExecuteResult:
    """The item waits for outside work: SUSPENDED with its state, polled from then on
    (`stage.pollSuspended` claims due items as it claims stages); the host parks its job."""
    now = deps.clock.now()
    next_poll_at, interval_ms, max_wait_until = suspend_times(stage, outcome.request, now)
    changes: ItemChanges = {
        "status": Status.SUSPENDED,
        "suspended_state": dict(outcome.request.state),
        "next_poll_at": next_poll_at,
        "poll_interval_ms": interval_ms,
        "max_wait_until": max_wait_until,
        "metrics": dict(report.metrics),
    }
    written = await deps.persistence.update_item(
        item.id, changes, fence=StageFence.running(cmd.attempt)
    )
    if written is None:
        return _ghost(f"Item {item.item_index} of stage {stage.id} of run {run.id} moved on")
    return JobExecuteResult(outcome="suspended", next_poll_at=next_poll_at)


async def _record_retry(
    deps: Deps,
    run: RunRecord,
    stage_record_id: str,
    item: ItemRecord,
    cmd: JobExecute,
    failure: Failure,
    started_at: datetime,
    retry_at: datetime,
) -> JobExecuteResult:
    """A failed attempt with another to come: the item goes back to PENDING with its error
    (the host makes the job due again at `retry_at`)."""
    changes: ItemChanges = {
        "status": Status.PENDING,
        "error": failure.error,
        "duration_ms": _elapsed_ms(started_at, deps.clock.now()),
    }
    written = await deps.persistence.update_item(
        item.id, changes, fence=StageFence.running(cmd.attempt)
    )
    if written is None:
        return _ghost(f"Item {item.item_index} of run {run.id} moved on")
    await log_item_failure(deps, run.id, stage_record_id, item.item_index, "WARN", failure)
    return JobExecuteResult(
        outcome="failed", error=failure.error, retryable=True, retry_at=retry_at
    )


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
        "duration_ms": _elapsed_ms(started_at, now),
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
    return {"status": status, "completed_at": now, "duration_ms": _elapsed_ms(started, now)}


def _stage_completed(run: RunRecord, row: StageRecord, now: datetime) -> StageCompleted:
    started = row.started_at or row.created_at
    return StageCompleted(
        timestamp=now,
        workflow_run_id=run.id,
        stage_id=row.stage_id,
        stage_name=row.stage_name,
        duration_ms=_elapsed_ms(started, now),
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


async def _requeue_items(
    deps: Deps,
    workflow: Workflow,
    run: RunRecord,
    row: StageRecord | None,
    causation_id: str,
    config: dict[str, Any],
    concurrency_key: str | None,
) -> JobExecuteResult:
    """A job for the whole mapped stage (the stuck-run reaper found its items' jobs lost):
    queue again each item of the pass that was queued and has not finished."""
    noop = JobExecuteResult(outcome="completed", transition=RunTransitionResult(action="noop"))
    if run.status is not Status.RUNNING or row is None or row.status is not Status.RUNNING:
        return noop
    async with atomic(deps, causation_id) as unit:
        items = {
            item.item_index: item for item in await unit.db.items_of_stage(run.id, row.stage_id)
        }
        specs = []
        for position in range(row.items_next):
            index = await index_at(deps, run, row, position)
            item = items.get(index)
            if item is not None and (item.status in TERMINAL or item.status is Status.SUSPENDED):
                continue  # finished, or the poller's
            attempts = 0 if item is None else item.attempt
            specs.append(
                item_spec(
                    run,
                    workflow,
                    row.stage_id,
                    index,
                    row.generation,
                    attempts,
                    config=config,
                    concurrency_key=concurrency_key,
                )
            )

        async def enqueue() -> None:
            await deps.jobs.enqueue(specs)

        if specs:
            await unit.with_jobs(enqueue)
    return noop


def _elapsed_ms(start: datetime, end: datetime) -> int:
    return max(int((end - start) / timedelta(milliseconds=1)), 0)
