"""Leasing jobs under fleet-wide limits (`wfc.runtime.limits`), one transaction per key.

Unlimited jobs are leased by one statement that skips what others hold. A
limited job needs a count first: how many jobs of its concurrency key are
RUNNING, how many leases its rate key saw within the window. Two workers
counting the same key at once would both see room for the last slot, so each
leasing transaction first locks the key's row in `limit_locks` (`FOR UPDATE`
on PostgreSQL; on SQLite the transaction holds the file's write lock from its
BEGIN IMMEDIATE), then counts, then leases at most the room it found and, for
a rate key, records each lease as a start. The counts are read from the jobs
themselves, so a worker that dies holding a slot gives it back when its lease
is reaped, and nothing can drift.

This costs a few statements per leased batch; the keys waiting are found by
one query that reads only PENDING limited jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.rows import to_record, upsert_insert
from wfc.runtime.adapters.sql.schema import jobs, limit_locks, rate_starts
from wfc.runtime.job_records import JobLimits, JobRecord, LimitUsage
from wfc.runtime.limits import with_overrides
from wfc.runtime.records import Status

_j = jobs.c

Shape = tuple[bool, int | None, int | None]
"""A dequeue's filters: (one run only, how many plans, how many queues; None: any)."""

_LIMIT_COLUMNS = (
    _j.concurrency_key,
    _j.concurrency_max,
    _j.rate_key,
    _j.rate_max,
    _j.rate_window_ms,
)

KEYS_PER_DEQUEUE = 20
"""Limit keys with jobs waiting that one dequeue looks at (the busiest are not favoured:
rows come in the order the database finds them)."""


async def lease_limited(
    connections: Connections,
    served: Sequence[ColumnElement[bool]],
    params: Mapping[str, Any],
    build_lease: Callable[..., Any],
) -> list[JobRecord]:
    """Lease up to `params["limit"]` due limited jobs meeting `served`, as their limits
    allow; `build_lease(*conditions)` makes the leasing statement."""
    room: int = params["limit"]
    leased: list[JobRecord] = []
    for limits in await _waiting_limits(connections, served, params):
        if room <= 0:
            break
        async with connections.transaction() as conn:
            free = await _room(conn, limits, params["now"], room)
            if free <= 0:
                continue
            statement = build_lease(*served, *_under(limits))
            rows = await direct.fetch(conn, statement, {**params, "limit": free})
            if rows and limits.rate_key is not None:
                starts = [{"key": limits.rate_key, "started_at": params["now"]} for _ in rows]
                await conn.execute(insert(rate_starts), starts)
        leased += [to_record(JobRecord, row) for row in rows]
        room -= len(rows)
    return sorted(leased, key=lambda job: -job.priority)


async def _waiting_limits(
    connections: Connections, served: Sequence[ColumnElement[bool]], params: Mapping[str, Any]
) -> list[JobLimits]:
    """The distinct limits of due PENDING jobs meeting `served`."""
    statement = (
        select(*_LIMIT_COLUMNS)
        .where(
            _j.status == Status.PENDING.value,
            or_(_j.run_at.is_(None), _j.run_at <= bindparam("now")),
            or_(_j.concurrency_key.is_not(None), _j.rate_key.is_not(None)),
            *served,
        )
        .distinct()
        .limit(KEYS_PER_DEQUEUE)
    )
    async with connections.single() as conn:
        found = await conn.execute(statement, {k: v for k, v in params.items() if k != "limit"})
        return [JobLimits(**row._mapping) for row in found]


def _under(limits: JobLimits) -> list[ColumnElement[bool]]:
    """The jobs under exactly these limit keys."""
    return [
        _j.concurrency_key.is_not_distinct_from(limits.concurrency_key),
        _j.rate_key.is_not_distinct_from(limits.rate_key),
    ]


async def _room(conn: AsyncConnection, limits: JobLimits, now: datetime, room: int) -> int:
    """Lock the keys of `limits`, then how many jobs under them may start now (at most
    `room`)."""
    # One statement creates the keys' rows if need be and locks them (an upsert that
    # updates locks the row it meets), in key order, returning the operators' bounds.
    upsert = upsert_insert(conn, limit_locks).values([{"key": k} for k in limits.keys()])
    locked = await conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["key"], set_={"key": upsert.excluded.key}
        ).returning(limit_locks.c.key, limit_locks.c.max_override)
    )
    overrides = {key: bound for key, bound in locked if bound is not None}
    if limits.rate_key is not None:  # the window slides: older leases no longer count
        await conn.execute(
            delete(rate_starts).where(
                rate_starts.c.key == limits.rate_key,
                rate_starts.c.started_at <= _since(limits, now),
            )
        )
    usage = await _usage(conn, with_overrides(limits, overrides), now)
    return usage.room(room)


def _since(limits: JobLimits, now: datetime) -> datetime:
    return now - timedelta(milliseconds=limits.rate_window_ms or 0)


async def limit_usage(conn: AsyncConnection, limits: JobLimits, now: datetime) -> LimitUsage:
    """RUNNING jobs under the concurrency key, leases under the rate key in its window,
    and the bounds in force."""
    return await _usage(conn, with_overrides(limits, await limit_overrides(conn)), now)


async def _usage(conn: AsyncConnection, limits: JobLimits, now: datetime) -> LimitUsage:
    running = started = None
    if limits.concurrency_key is not None:
        running = await conn.scalar(
            select(func.count()).where(
                _j.concurrency_key == limits.concurrency_key, _j.status == Status.RUNNING.value
            )
        )
    if limits.rate_key is not None:
        started = await conn.scalar(
            select(func.count()).where(
                rate_starts.c.key == limits.rate_key,
                rate_starts.c.started_at > _since(limits, now),
            )
        )
    return LimitUsage(
        running=None if running is None else int(running),
        concurrency_max=limits.concurrency_max,
        started=None if started is None else int(started),
        rate_max=limits.rate_max,
    )


async def limit_overrides(conn: AsyncConnection) -> dict[str, int]:
    """The bounds operators set, per key."""
    rows = await conn.execute(
        select(limit_locks.c.key, limit_locks.c.max_override).where(
            limit_locks.c.max_override.is_not(None)
        )
    )
    return {key: int(bound) for key, bound in rows}


async def set_limit_override(conn: AsyncConnection, key: str, bound: int | None) -> None:
    statement = upsert_insert(conn, limit_locks).values(key=key, max_override=bound)
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["key"], set_={"max_override": statement.excluded.max_override}
        )
    )


async def active_limits(conn: AsyncConnection) -> list[JobLimits]:
    """The distinct limits of PENDING and RUNNING jobs."""
    rows = await conn.execute(
        select(*_LIMIT_COLUMNS)
        .where(
            or_(_j.status == Status.PENDING.value, _j.status == Status.RUNNING.value),
            or_(_j.concurrency_key.is_not(None), _j.rate_key.is_not(None)),
        )
        .distinct()
    )
    return sorted((JobLimits(**row._mapping) for row in rows), key=lambda limits: limits.keys())
