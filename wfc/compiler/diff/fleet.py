"""Rules for queues, fleet limits and schedules: where and when jobs and runs start.

None of these reach what a run stores or reads: a queue picks the workers a
job goes to, a limit decides when a queued job may start, a schedule when a
new run is created. So every change here is compatible for the runs in flight,
but each is reported, with what it means for the jobs already queued, because
a deploy that moves a stage to a queue no worker serves yet, or stops a
schedule, is one a reviewer should see.
"""

from __future__ import annotations

from wfc.compiler.diff.context import Ctx
from wfc.compiler.diff.model import Verdict
from wfc.plan import DEFAULT_QUEUE, ConcurrencyLimit, PlanStage, RateLimit, ScheduleSpec

OK = Verdict.COMPATIBLE


def workflow_fleet(ctx: Ctx) -> None:
    """The workflow's queue and its schedules."""
    old, new = ctx.old, ctx.new
    if old.queue != new.queue:
        ctx.add(
            "workflow-queue-changed",
            f"the workflow's queue is {_queue(new.queue)}, was {_queue(old.queue)}: jobs of "
            "stages that name no queue of their own go there from now on; a job queued "
            "before keeps its queue, so keep a worker serving the old one until they have run",
            OK,
            path=("queue",),
            anchors=[("queue",), ("workflow",)],
        )
    before = {s.name: s for s in old.schedules}
    after = {s.name: s for s in new.schedules}
    for name, schedule in after.items():
        if name not in before:
            ctx.add(
                "schedule-added",
                f"new schedule `{name}` ({_when(schedule)}): it creates runs; runs in flight "
                "are not touched",
                OK,
                path=("schedule", name),
            )
        elif before[name] != schedule:
            ctx.add(
                "schedule-changed",
                f"schedule `{name}` changes {_changed(before[name], schedule)}: it decides "
                "when new runs start and with what input, not what runs in flight do",
                OK,
                path=("schedule", name),
            )
    for name, schedule in before.items():
        if name not in after:
            ctx.add(
                "schedule-removed",
                f"schedule `{name}` ({_when(schedule)}) removed: it starts no more runs; the "
                "runs it started go on",
                OK,
                path=("schedule", name),
                anchors=[("schedule", name), ("workflow",)],
            )


def stage_fleet(ctx: Ctx, old: PlanStage, new: PlanStage) -> None:
    """A stage's queue, concurrency and rate: when and where its next jobs start."""
    sid = new.id
    # A stage that follows the workflow's queue moves with it: `workflow-queue-changed` says so.
    if old.queue != new.queue and ctx.old.queue_of(sid) != ctx.new.queue_of(sid):
        ctx.add(
            "stage-queue-changed",
            f"`{sid}` runs on queue `{ctx.new.queue_of(sid)}`, was `{ctx.old.queue_of(sid)}`: "
            "jobs queued from now on go to the new queue; a job queued before keeps its "
            "queue, so keep a worker serving the old one until they have run",
            OK,
            stage_id=sid,
            path=("stage", sid, "queue"),
        )
    if old.concurrency != new.concurrency:
        ctx.add(
            "stage-concurrency-changed",
            f"`{sid}` runs {_concurrency(new.concurrency)}, was {_concurrency(old.concurrency)} "
            "(for jobs queued from now on; a job queued before keeps the bound it was "
            "queued with, and executions running now finish)",
            OK,
            stage_id=sid,
            path=("stage", sid, "concurrency"),
        )
    if old.rate != new.rate:
        ctx.add(
            "stage-rate-changed",
            f"`{sid}` starts {_rate(new.rate)}, was {_rate(old.rate)} (for jobs queued from "
            "now on; a job queued before keeps the rate it was queued with, and starts "
            "already made count in their window)",
            OK,
            stage_id=sid,
            path=("stage", sid, "rate"),
        )


def _queue(queue: str | None) -> str:
    return f"`{queue}`" if queue is not None else f"`{DEFAULT_QUEUE}` (none named)"


def _concurrency(limit: ConcurrencyLimit | None) -> str:
    if limit is None:
        return "without a concurrency limit"
    per = f" per {'.'.join(limit.per)}" if limit.per else ""
    return f"at most {limit.max} at once{per}"


_WINDOWS = {1000: "second", 60_000: "minute", 3_600_000: "hour", 86_400_000: "day"}


def _rate(limit: RateLimit | None) -> str:
    if limit is None:
        return "without a rate limit"
    window = _WINDOWS.get(limit.window_ms, f"{limit.window_ms} ms")
    shared = f" from the shared budget `{limit.shared}`" if limit.shared else ""
    return f"at most {limit.max} per {window}{shared}"


def _when(schedule: ScheduleSpec) -> str:
    return f'"{schedule.cron}" in {schedule.timezone}'


def _changed(old: ScheduleSpec, new: ScheduleSpec) -> str:
    """What differs, each with its old value: `cron "0 7 * * *" (was "0 6 * * *"), input`."""
    parts = [
        f"{what} {now} (was {was})"
        for what, was, now in (
            ("cron", f'"{old.cron}"', f'"{new.cron}"'),
            ("time zone", old.timezone, new.timezone),
            ("catch up", old.catch_up, new.catch_up),
            ("overlap", old.overlap, new.overlap),
        )
        if was != now
    ]
    if old.input != new.input:
        parts.append("its input")
    return ", ".join(parts)
