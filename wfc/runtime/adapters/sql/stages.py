"""SQL for stage rows: upsert, versioned update, reads, and the suspended-poll query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.errors import RecordNotFoundError, StaleVersionError
from wfc.runtime.adapters.sql.rows import column_values, to_record, to_values, upsert_insert
from wfc.runtime.adapters.sql.schema import stages
from wfc.runtime.records import StageChanges, StageRecord, Status


async def upsert_stage(
    conn: AsyncConnection, create: StageRecord, changes: StageChanges, now: datetime
) -> StageRecord:
    """One statement: insert `create`, or apply `changes` to the row already there."""
    statement = upsert_insert(conn, stages).values(**to_values(create))
    statement = statement.on_conflict_do_update(
        index_elements=["run_id", "stage_id"],
        set_={**column_values(dict(changes)), "version": stages.c.version + 1, "updated_at": now},
    ).returning(*stages.c)
    row = (await conn.execute(statement)).one()
    return to_record(StageRecord, row)


async def update_stage(
    conn: AsyncConnection,
    record_id: str,
    changes: StageChanges,
    now: datetime,
    expected_version: int | None,
) -> StageRecord:
    condition = stages.c.id == record_id
    if expected_version is not None:
        condition = and_(condition, stages.c.version == expected_version)
    statement = (
        update(stages)
        .where(condition)
        .values(**column_values(dict(changes)), version=stages.c.version + 1, updated_at=now)
        .returning(*stages.c)
    )
    row = (await conn.execute(statement)).first()
    if row is not None:
        return to_record(StageRecord, row)
    actual = (await conn.execute(select(stages.c.version).where(stages.c.id == record_id))).scalar()
    if actual is None:
        raise RecordNotFoundError("WorkflowStage", record_id)
    raise StaleVersionError("WorkflowStage", record_id, expected_version or 0, actual)


async def get_stage(conn: AsyncConnection, run_id: str, stage_id: str) -> StageRecord | None:
    statement = select(stages).where(stages.c.run_id == run_id, stages.c.stage_id == stage_id)
    row = (await conn.execute(statement)).first()
    return None if row is None else to_record(StageRecord, row)


_STAGES_OF_RUN = (
    select(stages)
    .where(stages.c.run_id == bindparam("run_id"))
    .order_by(stages.c.execution_group, stages.c.stage_number)
)


async def stages_of_run(conn: AsyncConnection, run_id: str) -> list[StageRecord]:
    rows = await conn.execute(_STAGES_OF_RUN, {"run_id": run_id})
    return [to_record(StageRecord, row) for row in rows]


async def suspended_stages_due(
    conn: AsyncConnection, now: datetime, limit: int
) -> list[StageRecord]:
    statement = (
        select(stages)
        .where(stages.c.status == Status.SUSPENDED.value, stages.c.next_poll_at <= now)
        .order_by(stages.c.next_poll_at, stages.c.id)
        .limit(limit)
    )
    return [to_record(StageRecord, row) for row in await conn.execute(statement)]


async def delete_stages(conn: AsyncConnection, record_ids: Sequence[str]) -> None:
    if record_ids:
        await conn.execute(delete(stages).where(stages.c.id.in_(list(record_ids))))
