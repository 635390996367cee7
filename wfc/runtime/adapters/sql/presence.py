"""SQL for the plans kept and the workers alive: each write one statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.plan import DEFAULT_QUEUE
from wfc.runtime.adapters.sql.rows import to_record, to_values, upsert_insert
from wfc.runtime.adapters.sql.schema import plans, workers
from wfc.runtime.records import PlanRecord, WorkerRecord


async def record_plans(conn: AsyncConnection, records: Sequence[PlanRecord]) -> None:
    if records:
        statement = upsert_insert(conn, plans).on_conflict_do_nothing(
            index_elements=["fingerprint"]
        )
        await conn.execute(statement, [to_values(record) for record in records])


async def get_plan(conn: AsyncConnection, fingerprint: str) -> PlanRecord | None:
    row = (await conn.execute(select(plans).where(plans.c.fingerprint == fingerprint))).first()
    return None if row is None else to_record(PlanRecord, row)


async def list_plans(conn: AsyncConnection, limit: int) -> list[PlanRecord]:
    statement = (
        select(plans).order_by(plans.c.recorded_at.desc(), plans.c.fingerprint.desc()).limit(limit)
    )
    return [to_record(PlanRecord, row) for row in await conn.execute(statement)]


async def announce_worker(conn: AsyncConnection, worker: WorkerRecord) -> None:
    statement = upsert_insert(conn, workers).values(to_values(worker))
    statement = statement.on_conflict_do_update(
        index_elements=["worker_id"],
        set_={
            "plans": statement.excluded.plans,
            "queues": statement.excluded.queues,
            "seen_at": statement.excluded.seen_at,
            "expires_at": statement.excluded.expires_at,
        },
    )
    await conn.execute(statement)


async def retire_worker(conn: AsyncConnection, worker_id: str) -> None:
    await conn.execute(delete(workers).where(workers.c.worker_id == worker_id))


async def live_workers(conn: AsyncConnection, now: datetime) -> list[WorkerRecord]:
    statement = select(workers).where(workers.c.expires_at > now).order_by(workers.c.worker_id)
    return [
        to_record(WorkerRecord, {**row._mapping, "queues": row.queues or [DEFAULT_QUEUE]})
        for row in await conn.execute(statement)
    ]
