"""Who serves what: `wfc workers`, and the notes on a run that waits for something.

A worker takes only runs of the plans it serves, so a run whose plan no live
worker serves waits (PENDING, or RUNNING with its next jobs queued). That is
right during a rolling deploy and wrong when the worker is never coming: the
commands that show runs say which plan the run waits for, so nobody has to
guess why it does not move. Likewise a stage whose job is on a queue no live
worker serves, or under a fleet limit that is full, says so in `wfc runs show`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from wfc.cli.session import db_read_option, json_option, opened_storage, print_json

if TYPE_CHECKING:
    from datetime import datetime

    from wfc.runtime.job_records import JobRecord, LimitUsage
    from wfc.runtime.ports import JobTransport, Persistence
    from wfc.runtime.records import RunRecord, WorkerRecord


def short(fingerprint: str) -> str:
    """`sha256:9bd1c0de…`: enough of a fingerprint to tell plans apart on a screen."""
    return fingerprint[:15] + "…" if len(fingerprint) > 15 else fingerprint


def _now() -> datetime:
    from wfc.runtime.adapters.memory import SystemClock

    return SystemClock().now()


async def served_plans(persistence: Persistence) -> set[str]:
    """The fingerprints some live worker serves."""
    workers = await persistence.live_workers(_now())
    return {plan for worker in workers for plan in worker.plans}


async def stage_waits(
    persistence: Persistence, jobs: JobTransport, run: RunRecord
) -> dict[str, str]:
    """Why the run's queued stages (and items) are not running, per stage id: no live
    worker serves their queue, or a fleet limit they are under is full."""
    from wfc.runtime.records import Status

    pending = [job for job in await jobs.jobs_of_run(run.id) if job.status is Status.PENDING]
    if not pending:
        return {}
    queues = {q for worker in await persistence.live_workers(_now()) for q in worker.queues}
    waits: dict[str, str] = {}
    for job in pending:
        if job.stage_id in waits:
            continue
        if job.queue not in queues:
            waits[job.stage_id] = (
                f"waits for a worker on queue {job.queue!r}: no live one serves it"
            )
        elif job.limits is not None:
            usage = await jobs.limit_usage(job.limits)
            if usage.full:
                waits[job.stage_id] = _full_limit(job, usage)
    return waits


def _full_limit(job: JobRecord, usage: LimitUsage) -> str:
    """`waits for the rate limit pricing-api: 50 of 50 started in the last minute`."""
    from wfc.runtime.limits import describe_key

    if usage.running is not None and usage.running >= (usage.concurrency_max or 0):
        return (
            f"waits for the {describe_key(job.concurrency_key or '')}: "
            f"{usage.running} of {usage.concurrency_max} running"
        )
    return (
        f"waits for the {describe_key(job.rate_key or '')}: {usage.started} of {usage.rate_max} "
        f"started in the last {window_words(job.rate_window_ms or 0)}"
    )


def window_words(ms: int) -> str:
    named = {1_000: "second", 60_000: "minute", 3_600_000: "hour"}
    return named.get(ms, f"{ms / 1000:g} s")


def waiting_for(run: RunRecord, served: set[str]) -> str | None:
    """`workflow@sha256:…` when `run` is unfinished and no live worker serves its plan."""
    from wfc.runtime.records import TERMINAL

    if run.status in TERMINAL or run.plan_fingerprint in served:
        return None
    return f"{run.workflow_id}@{run.plan_fingerprint}"


def waiting_note(runs: Iterable[RunRecord], served: set[str]) -> str | None:
    """One line for the runs that wait for a worker of their plan, or None."""
    waiting = sorted({w for run in runs if (w := waiting_for(run, served)) is not None})
    if not waiting:
        return None
    plans = ", ".join(f"{w.split('@')[0]}@{short(w.split('@')[1])}" for w in waiting)
    return (
        f"waiting for a worker that serves {plans}: no live worker does "
        "(start one with that plan; `wfc workers` lists who serves what)"
    )


@click.group("workers")
def workers_group() -> None:
    """The workers alive and the plans they serve."""


@workers_group.command("list")
@db_read_option
@json_option
def list_workers(db_url: str | None, as_json: bool) -> None:
    """Live workers (announced within their last ticks), the plans and queues each serves."""
    import asyncio

    async def read() -> tuple[list[WorkerRecord], dict[str, str]]:
        async with opened_storage(db_url) as storage:
            db = storage.persistence
            workers = await db.live_workers(_now())
            names: dict[str, str] = {}
            for plan in {p for worker in workers for p in worker.plans}:
                kept = await db.get_plan(plan)
                names[plan] = kept.workflow_id if kept is not None else "?"
            return workers, names

    workers, names = asyncio.run(read())
    if as_json:
        print_json(
            [
                {
                    "worker_id": w.worker_id,
                    "plans": [{"workflow_id": names[p], "fingerprint": p} for p in w.plans],
                    "queues": w.queues,
                    "started_at": w.started_at.isoformat(),
                    "seen_at": w.seen_at.isoformat(),
                }
                for w in workers
            ]
        )
        return
    if not workers:
        click.echo("no live workers")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("worker", "serves", "queues", "started", "seen")
    for w in workers:
        serves = ", ".join(f"{names[p]}@{short(p)}" for p in w.plans) or "-"
        table.add_row(
            w.worker_id,
            serves,
            ", ".join(w.queues),
            w.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            w.seen_at.strftime("%H:%M:%S"),
        )
    Console(width=None if Console().is_terminal else 160).print(table)
