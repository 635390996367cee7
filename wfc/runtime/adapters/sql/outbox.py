"""SQL for the outbox: gap-free per-run sequences, ordered reads, retries and the DLQ."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    column,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.drivers import dialect_name
from wfc.runtime.adapters.sql.rows import to_record
from wfc.runtime.adapters.sql.schema import outbox, runs
from wfc.runtime.records import NewOutboxEvent, OutboxRecord

_INSERT_EVENTS = insert(outbox)
# Built once, so `direct` runs it on the driver (on SQLite, the path every append takes).
_RESERVE = (
    update(runs)
    .where(runs.c.id == bindparam("run_id"))
    .values(last_sequence=runs.c.last_sequence + bindparam("count"))
    .returning(runs.c.last_sequence)
)


async def append(conn: AsyncConnection, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
    """Append events; concurrent appends to one run are serialised so sequences never collide.

    The run row's `last_sequence` is advanced by one UPDATE, whose row lock
    orders concurrent appends. Events of a run with no row (only port tests
    do that) fall back to an advisory lock (PostgreSQL; SQLite's BEGIN
    IMMEDIATE already serialises writers) and the current maximum.
    """
    records: list[OutboxRecord] = []
    for run_id, grouped in groupby(events, key=lambda e: e.run_id):
        group = list(grouped)
        if dialect_name(conn) == "postgresql":
            appended = await _append_in_one_statement(conn, run_id, group)
            if appended is not None:
                records.extend(appended)
                continue
        last = await _reserve(conn, run_id, len(group))
        records.extend(await insert_reserved(conn, group, last + len(group)))
    return records


async def insert_reserved(
    conn: AsyncConnection, events: Sequence[NewOutboxEvent], last: int
) -> list[OutboxRecord]:
    """Insert `events` of one run whose counter was advanced past them to `last` (by
    `_reserve`, or on SQLite by the run's held lock: `sqlite_run_lock`)."""
    batch = numbered(events, last)
    await insert_numbered(conn, batch)
    return batch


def numbered(events: Sequence[NewOutboxEvent], last: int) -> list[OutboxRecord]:
    """`events` of one run numbered up to `last`, their run's counter once advanced past them."""
    first = last - len(events)
    return [event.numbered(first + offset) for offset, event in enumerate(events, start=1)]


async def insert_numbered(conn: AsyncConnection, records: Sequence[OutboxRecord]) -> None:
    """Insert events already numbered, of one run or several, in one statement."""
    await direct.insert_rows(conn, _INSERT_EVENTS, [_event_values(r) for r in records])


async def append_to_new_run(
    conn: AsyncConnection, events: Sequence[NewOutboxEvent]
) -> list[OutboxRecord]:
    """The first events of a run whose row is inserted in the same transaction with
    `last_sequence` set to their number (`runs.create_run`): they are numbered 1…n here,
    with no counter to advance, so the insert is held like the run's own
    (`direct.defer_rows`) and a new run with its events costs no round trip of its own."""
    records = [event.numbered(sequence) for sequence, event in enumerate(events, start=1)]
    await direct.defer_rows(conn, _INSERT_EVENTS, [_event_values(record) for record in records])
    return records


def _event_values(record: OutboxRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "run_id": record.run_id,
        "sequence": record.sequence,
        "event_type": record.event_type,
        "payload": record.payload,
        "causation_id": record.causation_id,
        "occurred_at": record.occurred_at,
    }


def events_recordset() -> Any:
    """The events bound as one JSON parameter `events` (`events_json`), as rows `e`."""
    return (
        func.jsonb_to_recordset(cast(bindparam("events", type_=String), JSONB))
        .table_valued(
            column("ord", Integer),
            column("event_type", String),
            column("payload", JSONB),
            column("causation_id", String),
            column("occurred_at", TIMESTAMP(timezone=True)),
        )
        .render_derived(name="e", with_types=True)
    )


EVENT_COLUMNS = ("id", "run_id", "sequence", "event_type", "payload", "causation_id", "occurred_at")


def event_id(run_id: Any, sequence: Any) -> Any:
    """`OutboxRecord.id` in SQL, for the `id` column that workers before revision 0017 read."""
    return func.concat(run_id, ":", sequence)


def _append_postgres() -> Any:
    """The run's counter advanced by `count` and the events inserted after it, in one
    statement (a data-modifying CTE), whatever the number of events: compiled once, unlike
    a VALUES list built per call. A construct, so held writes can travel with it."""
    count = bindparam("count", type_=Integer)
    seq = (
        update(runs)
        .where(runs.c.id == bindparam("run_id"))
        .values(last_sequence=runs.c.last_sequence + count)
        .returning((runs.c.last_sequence - count).label("base"))
        .cte("seq")
    )
    event = events_recordset()
    run_id = bindparam("run_id", type_=String)
    numbered = select(
        event_id(run_id, seq.c.base + event.c.ord),
        run_id,
        seq.c.base + event.c.ord,
        event.c.event_type,
        event.c.payload,
        event.c.causation_id,
        event.c.occurred_at,
    ).select_from(seq, event)
    inserted = insert(outbox).from_select(EVENT_COLUMNS, numbered)
    return inserted.returning(outbox.c.sequence)


_APPEND_POSTGRES = _append_postgres()


def events_json(group: Sequence[NewOutboxEvent]) -> str:
    """Events as the one JSON parameter `jsonb_to_recordset` reads, `ord` numbering them 1…n."""
    return json.dumps(
        [
            {
                "ord": n,
                "event_type": e.event_type,
                "payload": e.payload,
                "causation_id": e.causation_id,
                "occurred_at": e.occurred_at.isoformat(),
            }
            for n, e in enumerate(group, start=1)
        ]
    )


async def _append_in_one_statement(
    conn: AsyncConnection, run_id: str, group: list[NewOutboxEvent]
) -> list[OutboxRecord] | None:
    """PostgreSQL: advance the run's counter and insert the events in one statement (a
    data-modifying CTE), saving a round trip per append; None when the run has no row."""
    result = await direct.fetch(
        conn,
        _APPEND_POSTGRES,
        {"count": len(group), "run_id": run_id, "events": events_json(group)},
    )
    if not result:
        return None
    last = max(int(row["sequence"]) for row in result)
    return [e.numbered(sequence) for sequence, e in enumerate(group, start=last - len(group) + 1)]


async def advance_counter(conn: AsyncConnection, run_id: str, by: int) -> int:
    """Move the counter of a run this transaction holds (it claimed it) by `by`, which
    may be negative: its `last_sequence` after."""
    row = await direct.first(conn, _RESERVE, {"run_id": run_id, "count": by})
    assert row is not None, "a run claimed in this transaction has its row"
    return int(row["last_sequence"])


async def reserve(conn: AsyncConnection, run_id: str, count: int) -> int:
    """The run's counter advanced by `count`: its `last_sequence` after."""
    return await _reserve(conn, run_id, count) + count


async def _reserve(conn: AsyncConnection, run_id: str, count: int) -> int:
    """The sequence before the `count` ones this append takes."""
    advanced = await direct.first(conn, _RESERVE, {"run_id": run_id, "count": count})
    if advanced is not None:
        return int(advanced["last_sequence"]) - count
    if dialect_name(conn) == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:run_id))"), {"run_id": run_id}
        )
    current = await conn.execute(
        select(func.max(outbox.c.sequence)).where(outbox.c.run_id == run_id)
    )
    return int(current.scalar() or 0)


_WAITING = and_(outbox.c.published_at.is_(None), outbox.c.dlq_at.is_(None))
_OF_TYPES = outbox.c.event_type.in_(bindparam("types", expanding=True))
_UNWANTED = update(outbox).values(published_at=bindparam("at"))
_UNWANTED_SOME = _UNWANTED.where(
    outbox.c.position.in_(
        select(outbox.c.position)
        .where(_WAITING, ~_OF_TYPES)
        .order_by(outbox.c.position)
        .limit(bindparam("limit"))
    )
)
_UNWANTED_ALL = _UNWANTED.where(
    outbox.c.position.in_(
        select(outbox.c.position)
        .where(_WAITING)
        .order_by(outbox.c.position)
        .limit(bindparam("limit"))
    )
)


async def unpublished(
    conn: AsyncConnection, limit: int, types: frozenset[str] | None = None
) -> list[OutboxRecord]:
    statement = select(outbox).where(_WAITING).order_by(outbox.c.position).limit(limit)
    if types is not None:
        statement = statement.where(outbox.c.event_type.in_(sorted(types)))
    return [to_record(OutboxRecord, row) for row in await conn.execute(statement)]


async def mark_unwanted_published(
    conn: AsyncConnection, wanted: frozenset[str], at: datetime, limit: int
) -> int:
    """One statement, built once, that reads no payload: the partial index of waiting
    events gives the oldest `limit`, their type is checked in the row."""
    if wanted:
        parameters = {"types": sorted(wanted), "at": at, "limit": limit}
        marked = await conn.execute(_UNWANTED_SOME, parameters)
    else:
        marked = await conn.execute(_UNWANTED_ALL, {"at": at, "limit": limit})
    return int(marked.rowcount)


async def mark_published(
    conn: AsyncConnection, events: Sequence[OutboxRecord], at: datetime
) -> None:
    """Found by position (the rowid on SQLite, the primary key on PostgreSQL), and only
    while the row there is still the event read (`_still_there`)."""
    if events:
        await conn.execute(
            update(outbox)
            .where(
                outbox.c.position.in_([_position(e) for e in events]),
                tuple_(outbox.c.position, outbox.c.run_id, outbox.c.sequence).in_(
                    [(_position(e), e.run_id, e.sequence) for e in events]
                ),
            )
            .values(published_at=at)
        )


def _position(event: OutboxRecord) -> int:
    """The row of an event read back: its position (`append_outbox`'s records have none)."""
    if event.position is None:
        raise ValueError(f"outbox event {event.id} has no position: not one the flush read")
    return event.position


def _still_there(event: OutboxRecord) -> Any:
    """The event's row, if it is still the event read. SQLite gives the highest rowid to
    the next insert once that row is deleted: an event pruned while a flush delivered it
    would otherwise let the flush mark the next event appended, which then would never be
    delivered. Its run and sequence tell the two apart; the position finds the row."""
    return and_(
        outbox.c.position == _position(event),
        outbox.c.run_id == event.run_id,
        outbox.c.sequence == event.sequence,
    )


async def increment_retry(conn: AsyncConnection, event: OutboxRecord) -> int:
    """The event's retries so far, this one counted (0 if its row is gone)."""
    statement = (
        update(outbox)
        .where(_still_there(event))
        .values(retry_count=outbox.c.retry_count + 1)
        .returning(outbox.c.retry_count)
    )
    return int((await conn.execute(statement)).scalar_one_or_none() or 0)


async def move_to_dlq(conn: AsyncConnection, event: OutboxRecord, at: datetime) -> None:
    await conn.execute(update(outbox).where(_still_there(event)).values(dlq_at=at))


async def replay_dlq(conn: AsyncConnection, limit: int) -> int:
    parked = (
        (
            await conn.execute(
                select(outbox.c.position)
                .where(outbox.c.dlq_at.is_not(None))
                .order_by(outbox.c.position)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if parked:
        await conn.execute(
            update(outbox).where(outbox.c.position.in_(parked)).values(dlq_at=None, retry_count=0)
        )
    return len(parked)


async def of_run(conn: AsyncConnection, run_id: str) -> list[OutboxRecord]:
    statement = select(outbox).where(outbox.c.run_id == run_id).order_by(outbox.c.sequence)
    return [to_record(OutboxRecord, row) for row in await conn.execute(statement)]
