"""Sampling the job queue for the `wfc.queue.depth` and `wfc.queue.lag` gauges.

A gauge is read on the exporter's thread (a Prometheus scrape, the OTLP
reader's timer), which cannot run a query on the worker's event loop, so a
task on the loop samples the jobs table every few seconds and the gauges read
the latest sample. Depth counts the jobs due now and not leased (what workers
are behind on); lag is how long the oldest of them has waited since it became
due. One small grouped query per interval, per worker: cheap next to the
worker's own dequeue polls.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.observability.instruments import QueueSample
from wfc.runtime.adapters.sql.engine import autocommit
from wfc.runtime.adapters.sql.schema import jobs
from wfc.runtime.ports import Clock
from wfc.runtime.records import Status

log = logging.getLogger("wfc.observability")

SAMPLE_EVERY = timedelta(seconds=5)


async def queue_stats(
    engine: AsyncEngine, now: datetime
) -> tuple[dict[str, int], dict[str, float]]:
    """Per queue: the jobs due and waiting, and the seconds the oldest has waited.

    One statement, so no transaction of its own (`autocommit`): on SQLite a transaction
    opens with BEGIN IMMEDIATE, which would take the file's write lock for a read, every
    few seconds, and queue behind every writer of every process."""
    due_since = func.coalesce(jobs.c.run_at, jobs.c.created_at)
    query = (
        select(jobs.c.queue, func.count(), func.min(due_since))
        .where(
            jobs.c.status == Status.PENDING.value,
            or_(jobs.c.run_at.is_(None), jobs.c.run_at <= now),
        )
        .group_by(jobs.c.queue)
    )
    async with autocommit(engine).connect() as conn:
        rows = (await conn.execute(query)).all()
    depth = {queue: int(count) for queue, count, _ in rows}
    lag = {queue: _waited(now, oldest) for queue, _, oldest in rows}
    return depth, lag


def _waited(now: datetime, since: datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:  # SQLite hands back naive UTC
        since = since.replace(tzinfo=now.tzinfo)
    return max((now - since).total_seconds(), 0.0)


async def sample_queues(
    engine: AsyncEngine, sample: QueueSample, clock: Clock, every: timedelta = SAMPLE_EVERY
) -> None:
    """Keep `sample` up to date until cancelled; a failed query keeps the last sample (the
    worker's own health check says when the database is away)."""
    while True:
        try:
            sample.update(*await queue_stats(engine, clock.now()))
        except Exception as error:
            log.debug("queue sample failed: %s", error)
        await asyncio.sleep(every.total_seconds())
