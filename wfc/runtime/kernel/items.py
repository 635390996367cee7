"""`job.execute` for one item of a mapped stage.

An item runs as a stage does (`wfc.runtime.kernel.execute`), on a row of its own:
a delivery starts the item at its attempt (`StageFence.startable`), the body
runs outside any transaction, and the outcome is written only while the item
is still RUNNING at that attempt (`StageFence.running`) — so a worker paused
past its lease can neither overwrite nor count an item another delivery ran.

This module is the delivery: start the item, run its body, and answer with
what came of it: a suspension, a retry, a completed item handed on in one
write (`item_hand_on`), or else its final outcome, which is written the way a
poll of a suspended item writes it too (`wfc.runtime.kernel.item_outcome`:
the fenced transaction that counts it on its stage, queues the next item and,
for the last, gathers the results and ends the stage). Nothing here reads or
writes another item's row.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from wfc.errors import RecordNotFoundError
from wfc.observability import attempt_opened
from wfc.plan import PlanStage
from wfc.runtime.commands import JobExecute, JobExecuteResult, RunTransitionResult
from wfc.runtime.kernel.deps import Deps, KeyCompletion, atomic
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
from wfc.runtime.kernel.item_outcome import (
    Refused,
    Writer,
    log_item_failure,
    record_outcome,
    storable_item_report,
)
from wfc.runtime.kernel.mapping import index_at, item_spec, item_value
from wfc.runtime.kernel.rows import load_outputs, stage_prefix
from wfc.runtime.kernel.stage_outcome import elapsed_ms
from wfc.runtime.records import (
    TERMINAL,
    ItemChanges,
    ItemRecord,
    RunRecord,
    StageFence,
    StageRecord,
    Status,
)
from wfc.runtime.workflow import Workflow

# `item_poll` imports the outcome's pieces from here, where they were first written.
__all__ = [
    "Refused",
    "Writer",
    "execute_item",
    "log_item_failure",
    "record_outcome",
    "storable_item_report",
]

log = logging.getLogger("wfc.kernel")


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
        "duration_ms": elapsed_ms(started_at, deps.clock.now()),
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
