"""SQL for signals sent to runs (`Persistence.add_signal`, `take_signal`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.runtime.adapters.sql.rows import to_record, to_values, upsert_insert
from wfc.runtime.adapters.sql.schema import signals
from wfc.runtime.records import SignalRecord


def _record(row: Any) -> SignalRecord:
    return to_record(SignalRecord, row)


async def add_signal(conn: AsyncConnection, signal: SignalRecord) -> SignalRecord:
    """Insert the signal unless its run has one under its key; the row there either way."""
    values = to_values(signal)
    del values["sequence"]  # given by the table, after every signal before it
    statement = upsert_insert(conn, signals).values(values)
    statement = statement.on_conflict_do_nothing(index_elements=["run_id", "idempotency_key"])
    inserted = (await conn.execute(statement.returning(*signals.c))).first()
    if inserted is not None:
        return _record(inserted)
    row = (
        await conn.execute(
            select(signals).where(
                signals.c.run_id == signal.run_id,
                signals.c.idempotency_key == signal.idempotency_key,
            )
        )
    ).one()
    return _record(row)


async def take_signal(
    conn: AsyncConnection, run_id: str, name: str, consumer: str, at: datetime
) -> SignalRecord | None:
    """Consume the first unconsumed signal of `name`: one conditional update."""
    first = (
        select(func.min(signals.c.sequence))
        .where(
            signals.c.run_id == run_id,
            signals.c.name == name,
            signals.c.consumed_at.is_(None),
        )
        .scalar_subquery()
    )
    statement = (
        update(signals)
        .where(signals.c.sequence == first, signals.c.consumed_at.is_(None))
        .values(consumed_at=at, consumed_by=consumer)
        .returning(*signals.c)
    )
    row = (await conn.execute(statement)).first()
    return None if row is None else _record(row)


async def signals_of_run(conn: AsyncConnection, run_id: str) -> list[SignalRecord]:
    statement = select(signals).where(signals.c.run_id == run_id).order_by(signals.c.sequence)
    return [_record(row) for row in await conn.execute(statement)]
