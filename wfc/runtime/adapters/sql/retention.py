"""SQL for pruning finished runs: a batch of runs and every row that belongs to them, in one
short transaction, so a large prune never holds long locks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.runtime.adapters.sql.rows import to_record
from wfc.runtime.adapters.sql.schema import items, logs, outbox, runs, signals, stages
from wfc.runtime.records import RunRecord, Status


async def prune_runs(
    conn: AsyncConnection, finished_before: datetime, statuses: Sequence[Status], limit: int
) -> list[RunRecord]:
    """Delete up to `limit` finished runs with their rows (oldest first); the runs deleted.
    On PostgreSQL the runs are locked as chosen and others' locked rows skipped, so two
    pruners take different batches."""
    chosen = (
        select(runs)
        .where(
            runs.c.status.in_([status.value for status in statuses]),
            runs.c.completed_at < finished_before,
        )
        .order_by(runs.c.completed_at, runs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    doomed = [to_record(RunRecord, row) for row in await conn.execute(chosen)]
    ids = [run.id for run in doomed]
    if not ids:
        return []
    for table in (items, stages, signals, logs, outbox):
        await conn.execute(delete(table).where(table.c.run_id.in_(ids)))
    await conn.execute(delete(runs).where(runs.c.id.in_(ids)))
    return doomed
