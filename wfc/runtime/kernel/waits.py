"""Built-in stages: a durable sleep and a wait for a signal (`wfc.plan_waits`).

Neither runs user code nor holds a worker while it waits. When its group opens
(`open_group`), the stage's row is created SUSPENDED, with what it waits for in
`suspended_state` and the instant its wait ends in `max_wait_until`, and no
`next_poll_at` (no poller ever checks it). Its timer is a job queued with
`run_at` at that instant: durable like every job, so it outlives the worker that
queued it, and cancelled with the run's other jobs. When the timer is due, a
worker leases it like any other job and `job.execute` runs the stage's built-in
body (`builtin_report`): a sleep outputs `{"woke_at": …}`, a signal wait that
timed out fails (`on_timeout: fail`, not retried) or outputs null (`continue`).
Those writes are fenced as every delivery's are: the start moves the row from
SUSPENDED to RUNNING only while it is still open (`StageFence.startable`).

A signal wait takes the first unconsumed signal of its name as it opens, and
completes at once when there is one; otherwise `run.signal` completes it when the
signal comes (`wfc.runtime.kernel.signals`), fenced on the row still SUSPENDED at
the version it read. Whichever of the signal and the timeout's start writes
first wins; the other finds the row moved on and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from wfc.plan import PlanStage, SignalTimeout
from wfc.runtime.events import StageCompleted
from wfc.runtime.handoff import due_later
from wfc.runtime.job_records import JobSpec
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.kernel.invoke import Failure, Produced, Report
from wfc.runtime.kernel.rows import (
    UnopenableStage,
    job_spec,
    load_outputs,
    new_stage_row,
    output_key,
    save_output,
    stage_started,
)
from wfc.runtime.records import TERMINAL, RunRecord, StageChanges, StageRecord, Status
from wfc.runtime.workflow import Workflow

SLEEP_FAILED = "SLEEP_FAILED"
SIGNAL_TIMEOUT = "SignalTimeout"


async def wake_times(
    deps: Deps,
    run: RunRecord,
    workflow: Workflow,
    group: int,
    earlier: Sequence[StageRecord],
    known: dict[str, Any] | None,
    skipped: Mapping[str, str],
) -> dict[str, datetime]:
    """When each sleep of `group` that runs wakes, by stage id (`UnopenableStage` when an
    `until` is missing or not an ISO-8601 instant)."""
    now = deps.clock.now()
    times: dict[str, datetime] = {}
    for stage_id in workflow.group(group):
        stage = workflow.stage(stage_id)
        if stage is None or stage.sleep is None or stage_id in skipped:
            continue
        if stage.sleep.duration_ms is not None:
            times[stage_id] = now + timedelta(milliseconds=stage.sleep.duration_ms)
            continue
        path = stage.sleep.until or ("input",)
        read = [row for row in earlier if row.stage_id == path[0]]
        outputs = await load_outputs(deps, read, known)
        times[stage_id] = _instant(stage, path, run.input if path[0] == "input" else outputs)
    return times


def _instant(stage: PlanStage, path: tuple[str, ...], source: Any) -> datetime:
    value: Any = source if path[0] == "input" else source.get(path[0])
    for name in path[1:]:
        value = value.get(name) if isinstance(value, dict) else None
    where = ".".join(path)
    if not isinstance(value, str):
        raise UnopenableStage(
            stage.id, SLEEP_FAILED, f"Stage {stage.id} sleeps until {where}, which is {value!r}"
        )
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise UnopenableStage(
            stage.id,
            SLEEP_FAILED,
            f"Stage {stage.id} sleeps until {where}, which is {value!r}, not an ISO-8601 instant",
        ) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


async def open_builtin(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    workflow: Workflow,
    stage_id: str,
    *,
    generation: int,
    wake_at: datetime | None,
    specs: list[JobSpec],
) -> bool:
    """Create a built-in stage's row, SUSPENDED, and queue its timer in `specs`; a signal
    wait whose signal came already completes here. Whether the stage is finished."""
    stage = workflow.stage(stage_id)
    assert stage is not None and stage.builtin
    now = deps.clock.now()
    fresh = new_stage_row(deps, run, workflow, stage_id, generation=generation)
    ends_at, state = _wait_of(stage, now, wake_at)
    fresh = replace(
        fresh,
        status=Status.SUSPENDED,
        started_at=now,
        suspended_state=state,
        max_wait_until=ends_at,
    )
    row = await unit.db.upsert_stage(fresh, {})
    if row.id != fresh.id:  # an orphan of a crash: left as it is
        return row.status in TERMINAL
    unit.opened.append(row)
    unit.emit(stage_started(row, now))
    if stage.wait_for is not None:
        taken = await unit.db.take_signal(run.id, stage.wait_for.signal, row.id, now)
        if taken is not None:
            completed = await complete_wait(deps, unit, run, row, taken.payload)
            unit.opened[-1] = completed
            return True
    if ends_at is not None:
        specs.append(replace(job_spec(run, workflow, stage_id), run_at=ends_at))
        due_later(ends_at)
    return False


def _wait_of(
    stage: PlanStage, now: datetime, wake_at: datetime | None
) -> tuple[datetime | None, dict[str, Any]]:
    """When the stage's wait ends (None: never, a signal wait without a timeout) and its
    `suspended_state`: what `wfc runs show` says it waits for."""
    if stage.sleep is not None:
        assert wake_at is not None
        return wake_at, {"sleep_until": wake_at.isoformat()}
    assert stage.wait_for is not None
    timeout = stage.wait_for.timeout_ms
    ends_at = None if timeout is None else now + timedelta(milliseconds=timeout)
    return ends_at, {
        "signal": stage.wait_for.signal,
        "since": now.isoformat(),
        "times_out_at": None if ends_at is None else ends_at.isoformat(),
    }


async def complete_wait(
    deps: Deps, unit: Unit, run: RunRecord, row: StageRecord, payload: Any
) -> StageRecord:
    """Complete the signal wait `row` (just created in this transaction) with `payload`."""
    now = deps.clock.now()
    await save_output(deps, run, row.stage_id, payload)
    completed = await unit.db.update_stage(row.id, completion(row, run, now))
    unit.emit(completed_event(completed, now))
    return completed


def completion(row: StageRecord, run: RunRecord, now: datetime) -> StageChanges:
    """The changes that complete a waiting built-in stage at `now`."""
    started = row.started_at or row.created_at
    return {
        "status": Status.COMPLETED,
        "completed_at": now,
        "duration_ms": max(int((now - started) / timedelta(milliseconds=1)), 0),
        "output_ref": output_key(run, row.stage_id),
        "suspended_state": None,
        "next_poll_at": None,
        "max_wait_until": None,
        "error": None,
    }


def completed_event(row: StageRecord, now: datetime) -> StageCompleted:
    return StageCompleted(
        timestamp=now,
        workflow_run_id=row.run_id,
        stage_id=row.stage_id,
        stage_name=row.stage_name,
        duration_ms=row.duration_ms or 0,
    )


def builtin_report(deps: Deps, stage: PlanStage) -> Report:
    """What a built-in stage's job does when its timer is due: a sleep wakes; a signal wait
    times out, failing for good or completing with null as its plan says."""
    now = deps.clock.now()
    if stage.sleep is not None:
        return Report(outcome=Produced(output={"woke_at": now.isoformat()}))
    assert stage.wait_for is not None
    wait = stage.wait_for
    if wait.on_timeout is SignalTimeout.CONTINUE:
        return Report(outcome=Produced(output=None))
    return Report(
        outcome=Failure(
            error=f"{SIGNAL_TIMEOUT}: Stage {stage.id} waited {wait.timeout_ms} ms for "
            f"signal {wait.signal}, which did not come",
            retryable=False,
        )
    )
