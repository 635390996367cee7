"""Firing schedules: a run per due tick, once across the fleet, and keeping plans' schedules.

`fire_due_schedules` is what a worker calls when a schedule is due. For each due
schedule of a workflow it serves it works out the ticks to fire (`catch_up`,
`wfc.runtime.cron.due_ticks`) and, tick by tick:

1. starts the tick's run with `run.create` under the key
   `schedule:<workflow>:<name>:<tick>`, unless `overlap skip` finds the last
   run still active. The key is what makes the run one: a second worker firing
   the same tick gets the first one's run back (or is told the key is in
   progress, and leaves the tick to the worker holding it);
2. moves the schedule past the tick with `ScheduleStore.advance`, conditional on
   `next_due_at` being still the tick it read. If that write does not land,
   another worker handled the tick and this one stops.

Run first, then advance: a worker that dies between the two leaves the tick
due, and whoever fires it next gets the same run back from its key. So every
tick is handled and none starts two runs, whatever the number of workers, and
nothing depends on a leader or on memory.

`sync_declared` writes the schedules the plans a worker serves declare, and
deletes the plan schedules of its workflows that no plan of a live worker
declares any more.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from wfc.errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    InvalidRunInputError,
)
from wfc.plan import CatchUp, Overlap, Plan, ScheduleSpec
from wfc.runtime.commands import IDEMPOTENCY_KEY_MAX, RunCreate
from wfc.runtime.cron import CronError, check, due_ticks, next_after
from wfc.runtime.kernel.kernel import Kernel
from wfc.runtime.records import TERMINAL
from wfc.runtime.schedule_store import ScheduleRecord, ScheduleStore, TickRecord

log = logging.getLogger("wfc.schedules")

MAX_SCHEDULES_PER_PASS = 50
MAX_TICKS_PER_PASS = 100  # per schedule (`catch_up all` after a long outage): the rest next pass


@dataclass(slots=True)
class FireResult:
    """What one pass did, and when the soonest schedule it serves is due next."""

    started: int = 0
    skipped: int = 0
    next_due_at: datetime | None = None
    more: bool = False  # a limit was reached: more may be due now


def tick_key(workflow_id: str, name: str, tick: datetime) -> str:
    """The idempotency key of a tick's run; hashed when it would be too long for a key."""
    key = f"schedule:{workflow_id}:{name}:{tick.isoformat()}"
    if len(key) <= IDEMPOTENCY_KEY_MAX:
        return key
    return "schedule:sha256:" + hashlib.sha256(key.encode()).hexdigest()


async def fire_due_schedules(
    kernel: Kernel,
    store: ScheduleStore,
    *,
    max_schedules: int = MAX_SCHEDULES_PER_PASS,
    max_ticks: int = MAX_TICKS_PER_PASS,
) -> FireResult:
    """Fire the due ticks of the schedules of the workflows the kernel serves."""
    served = [workflow.id for workflow in kernel.deps.registry.workflows()]
    result = FireResult()
    now = kernel.deps.clock.now()
    due = await store.due(now, served, max_schedules)
    for schedule in due:
        await _fire(kernel, store, schedule, now, max_ticks, result)
    result.more = result.more or len(due) >= max_schedules
    result.next_due_at = await store.next_due_at(served)
    return result


async def _fire(
    kernel: Kernel,
    store: ScheduleStore,
    schedule: ScheduleRecord,
    now: datetime,
    max_ticks: int,
    result: FireResult,
) -> None:
    """Fire one due schedule's ticks in order, each run created before the fenced advance."""
    try:
        plan = due_ticks(
            schedule.cron,
            schedule.timezone,
            CatchUp(schedule.catch_up),
            schedule.next_due_at,
            now,
            max_ticks=max_ticks,
        )
    except (CronError, ValueError) as error:  # a row written by hand: say so, fire nothing
        log.error("schedule %s of %s cannot fire: %s", schedule.name, schedule.workflow_id, error)
        return
    expected = schedule.next_due_at
    if not plan.ticks:  # `catch_up skip` after downtime: move on to the next tick
        await store.advance(schedule.id, expected, plan.then_due, now)
        return
    last_run = schedule.last_run_id
    for index, tick in enumerate(plan.ticks):
        record = await _start(kernel, schedule, tick, last_run)
        if record is None:  # another worker is creating this tick's run: the tick is its
            return
        following = plan.ticks[index + 1] if index + 1 < len(plan.ticks) else plan.then_due
        if not await store.advance(schedule.id, expected, following, now, record):
            return  # another worker handled the tick (and got the same run)
        expected = following
        last_run = record.run_id or last_run
        if record.run_id is not None:
            result.started += 1
        else:
            result.skipped += 1
    result.more = result.more or plan.then_due <= now


async def _start(
    kernel: Kernel, schedule: ScheduleRecord, tick: datetime, last_run: str | None
) -> TickRecord | None:
    """Start the tick's run, or say why not; None when another worker holds its key now."""
    if schedule.overlap == Overlap.SKIP and last_run is not None:
        run = await kernel.deps.persistence.get_run(last_run)
        if run is not None and run.status not in TERMINAL:
            return TickRecord(tick=tick, outcome=f"skipped: run {last_run} is {run.status.value}")
    command = RunCreate(
        idempotency_key=tick_key(schedule.workflow_id, schedule.name, tick),
        workflow_id=schedule.workflow_id,
        input=schedule.input,
        metadata={"schedule": schedule.name, "tick": tick.isoformat()},
    )
    try:
        created = await kernel.dispatch(command)
    except IdempotencyInProgressError:
        return None
    except IdempotencyKeyReusedError as error:  # the tick's run, from the schedule's old input
        return TickRecord(tick=tick, outcome="started", run_id=error.run_id)
    except InvalidRunInputError as error:  # the plan changed under the schedule's input
        log.error("schedule %s of %s: %s", schedule.name, schedule.workflow_id, error)
        return TickRecord(tick=tick, outcome=f"refused: {'; '.join(error.problems)}")
    return TickRecord(tick=tick, outcome="started", run_id=created.workflow_run_id)


def declared_record(
    workflow_id: str, spec: ScheduleSpec, now: datetime, schedule_id: str
) -> ScheduleRecord:
    """The row of a schedule a plan declares, first due at its next tick after `now`."""
    return ScheduleRecord(
        id=schedule_id,
        workflow_id=workflow_id,
        name=spec.name,
        cron=spec.cron,
        timezone=spec.timezone,
        input=dict(spec.input),
        catch_up=spec.catch_up.value,
        overlap=spec.overlap.value,
        paused=False,
        source="plan",
        next_due_at=next_after(spec.cron, spec.timezone, now),
        created_at=now,
        updated_at=now,
    )


async def sync_declared(kernel: Kernel, store: ScheduleStore) -> int:
    """Write the schedules the served plans declare; delete the plan schedules of served
    workflows that neither they nor a plan another live worker serves declare (a worker of
    an older plan still declaring one keeps it). Schedules added from the CLI are never
    touched. How many were deleted."""
    deps = kernel.deps
    now = deps.clock.now()
    workflows = deps.registry.workflows()
    declared: list[ScheduleRecord] = []
    for workflow in workflows:
        for spec in workflow.plan.schedules:
            try:
                check(spec.cron, spec.timezone)
            except CronError as error:
                log.error("schedule %s of %s is ignored: %s", spec.name, workflow.id, error)
                continue
            declared.append(declared_record(workflow.id, spec, now, deps.ids.new_id()))
    await store.declare(declared)
    ours = {(s.workflow_id, s.name) for s in declared}
    kept = await store.schedules(workflow_ids=[workflow.id for workflow in workflows])
    orphans = [s for s in kept if s.source == "plan" and (s.workflow_id, s.name) not in ours]
    if not orphans:
        return 0
    elsewhere = await _declared_by_live_workers(kernel, now, deps.registry.plans())
    return await store.delete([s.id for s in orphans if (s.workflow_id, s.name) not in elsewhere])


async def _declared_by_live_workers(
    kernel: Kernel, now: datetime, own: Sequence[str]
) -> set[tuple[str, str]]:
    """(workflow, schedule name) of every schedule the plans of other live workers declare."""
    persistence = kernel.deps.persistence
    fingerprints = {p for w in await persistence.live_workers(now) for p in w.plans} - set(own)
    names: set[tuple[str, str]] = set()
    for fingerprint in sorted(fingerprints):
        kept = await persistence.get_plan(fingerprint)
        if kept is None:
            continue
        plan = Plan.from_json(kept.plan)
        names.update((kept.workflow_id, spec.name) for spec in plan.schedules)
    return names
