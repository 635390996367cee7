"""SQL for stage rows: upsert, versioned update, reads, and the suspended-poll query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    bindparam,
    delete,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from wfc.errors import RecordNotFoundError
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.rows import (
    Guard,
    built_once,
    column_values,
    params_for,
    prefixed,
    to_record,
    to_values,
    update_versioned,
    upsert_insert,
)
from wfc.runtime.adapters.sql.runs import get_run
from wfc.runtime.adapters.sql.schema import runs, stages
from wfc.runtime.records import RunRecord, StageChanges, StageRecord, Status


async def upsert_stage(
    conn: AsyncConnection, create: StageRecord, changes: StageChanges, now: datetime
) -> StageRecord:
    """One statement: insert `create`, or apply `changes` to the row already there."""
    values, updates = to_values(create), column_values(dict(changes))

    def build() -> Any:
        statement = upsert_insert(conn, stages).values(params_for(values, "v_"))
        return statement.on_conflict_do_update(
            index_elements=["run_id", "stage_id"],
            set_={
                **params_for(updates, "u_"),
                "version": stages.c.version + 1,
                "updated_at": bindparam("now"),
            },
        ).returning(*stages.c)

    statement = built_once(("upsert_stage", conn.dialect.name, *updates), build)
    params = prefixed(values, "v_") | prefixed(updates, "u_") | {"now": now}
    row = await direct.first(conn, statement, params)
    assert row is not None, "an upsert returns its row"
    return to_record(StageRecord, row)


_INSERT_STAGE = insert(stages)


async def insert_stage(conn: AsyncConnection, create: StageRecord) -> None:
    """Insert a row known to be new (held in a transaction): one already there is an error."""
    await direct.defer_rows(conn, _INSERT_STAGE, [to_values(create)])


async def update_stage(
    conn: AsyncConnection,
    record_id: str,
    changes: StageChanges,
    now: datetime,
    expected_version: int | None,
) -> StageRecord:
    row = await update_versioned(
        conn, stages, "WorkflowStage", record_id, dict(changes), now, expected_version
    )
    assert row is not None, "an update without a guard changes its row or raises"
    return to_record(StageRecord, row)


def _run_is_running() -> ColumnElement[bool]:
    running = runs.c.id == bindparam("g_run_id"), runs.c.status == Status.RUNNING.value
    return exists().where(*running)


async def update_stage_while_running(
    conn: AsyncConnection, record_id: str, run_id: str, changes: StageChanges, now: datetime
) -> StageRecord | None:
    """The guarded write of a stage's outcome: one statement, no separate run read."""
    guard = Guard("run_is_running", _run_is_running, {"g_run_id": run_id})
    row = await update_versioned(
        conn, stages, "WorkflowStage", record_id, dict(changes), now, None, guard
    )
    return None if row is None else to_record(StageRecord, row)


def _lock_and_update(updates: dict[str, Any]) -> Any:
    """PostgreSQL: the run's lock and the stage's write as one statement. The run's UPDATE
    is a data-modifying CTE, so it runs (and takes the row lock) whether or not the stage
    is written; the stage is written only if the locked run is RUNNING."""
    locked = (
        update(runs)
        .where(runs.c.id == bindparam("run_id"))
        .values(version=runs.c.version + 1, updated_at=bindparam("now"))
        .returning(*runs.c)
        .cte("locked")
    )
    return (
        update(stages)
        .where(stages.c.id == bindparam("record_id"), locked.c.status == Status.RUNNING.value)
        .values(
            {
                **params_for(updates, "u_"),
                "version": stages.c.version + 1,
                "updated_at": bindparam("now"),
            }
        )
        .returning(*stages.c, *(column.label(f"locked_{column.name}") for column in locked.c))
        .add_cte(locked)
    )


async def lock_run_and_update_stage(
    conn: AsyncConnection, run_id: str, record_id: str, changes: StageChanges, now: datetime
) -> tuple[RunRecord, StageRecord] | None:
    """Lock the run and write the stage if the run is RUNNING: one statement on PostgreSQL,
    the two updates on SQLite (whose BEGIN IMMEDIATE holds the write lock already)."""
    if conn.dialect.name != "postgresql":
        try:
            run_row = await update_versioned(conn, runs, "WorkflowRun", run_id, {}, now, None)
        except RecordNotFoundError:
            return None
        if run_row is None or run_row["status"] != Status.RUNNING.value:
            return None
        run = to_record(RunRecord, run_row)
        return run, await update_stage(conn, record_id, changes, now, None)
    updates = column_values(dict(changes))
    statement = built_once(
        ("lock_run_and_update_stage", *updates), lambda: _lock_and_update(updates)
    )
    params = prefixed(updates, "u_") | {"run_id": run_id, "record_id": record_id, "now": now}
    row = await direct.first(conn, statement, params)
    if row is not None:
        return to_record(RunRecord, row, "locked_"), to_record(StageRecord, row)
    current = await get_run(conn, run_id)  # the rare path: only to tell why nothing was written
    if current is not None and current.status is Status.RUNNING:
        raise RecordNotFoundError("WorkflowStage", record_id)
    return None


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
    rows = await direct.fetch(conn, _STAGES_OF_RUN, {"run_id": run_id})
    return [to_record(StageRecord, row) for row in rows]


# The run's columns and its stages' side by side, one row per stage (one row of NULL
# stage columns when it has none), labelled `runs_<column>` and `stages_<column>`.
_RUN_WITH_STAGES = (
    select(runs, stages)
    .select_from(runs.outerjoin(stages, stages.c.run_id == runs.c.id))
    .where(runs.c.id == bindparam("run_id"))
    .order_by(stages.c.execution_group, stages.c.stage_number)
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
)


async def run_with_stages(
    conn: AsyncConnection, run_id: str
) -> tuple[RunRecord, list[StageRecord]] | None:
    rows = await direct.fetch(conn, _RUN_WITH_STAGES, {"run_id": run_id})
    if not rows:
        return None
    run = to_record(RunRecord, rows[0], "runs_")
    found = [to_record(StageRecord, row, "stages_") for row in rows if row["stages_id"]]
    return run, found


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
