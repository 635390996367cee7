"""SQL for the items of mapped stages: the fenced start and outcome, reads and resets.

An item's writes are fenced like a stage row's (`StageFence`, the same condition
on the `items` table), each one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Exists, Select, Update, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

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
from wfc.runtime.adapters.sql.schema import items, stages, status_is
from wfc.runtime.adapters.sql.stages import fence_condition, fence_params, fence_shape
from wfc.runtime.adapters.sql.suspended_rows import claim_due
from wfc.runtime.records import ItemChanges, ItemRecord, StageFence, Status

_OPEN = (Status.PENDING.value, Status.RUNNING.value, Status.SUSPENDED.value)


def _stage_runs() -> Exists:
    """The item's stage's row is RUNNING at the fence's pass (`StageFence.stage_running`).
    On PostgreSQL the row is share-locked: a cancel or a rerun, which writes it before it
    ends the items, either waits for this start to commit and then finds its row, or
    commits first and this start, reading the row again, writes nothing."""
    return (
        select(stages.c.id)
        .where(
            stages.c.run_id == bindparam("v_run_id"),
            stages.c.stage_id == bindparam("v_stage_id"),
            stages.c.status == Status.RUNNING.value,
            stages.c.generation == bindparam("f_generation"),
        )
        .with_for_update(read=True)
        .exists()
    )


async def start_item(
    conn: AsyncConnection,
    create: ItemRecord,
    changes: ItemChanges,
    now: datetime,
    fence: StageFence,
) -> ItemRecord | None:
    """One statement: insert `create`, or apply `changes` to the row there if it passes
    `fence` (None when it does not). With `fence.stage_running`, neither unless the
    item's stage's row is RUNNING at the fence's pass: the insert is a SELECT of the
    values under that condition."""
    values, updates = to_values(create), column_values(dict(changes))

    def build() -> Any:
        statement = upsert_insert(conn, items)
        if fence.stage_running:
            typed = (bindparam(f"v_{column}", type_=items.c[column].type) for column in values)
            statement = statement.from_select(list(values), select(*typed).where(_stage_runs()))
        else:
            statement = statement.values(params_for(values, "v_"))
        return statement.on_conflict_do_update(
            index_elements=["run_id", "stage_id", "item_index"],
            set_={
                **params_for(updates, "u_"),
                "version": items.c.version + 1,
                "updated_at": bindparam("now"),
            },
            where=fence_condition(fence, items),
        ).returning(*items.c)

    statement = built_once(("start_item", conn.dialect.name, fence_shape(fence), *updates), build)
    params = prefixed(values, "v_") | prefixed(updates, "u_") | {"now": now}
    row = await direct.first(conn, statement, params | fence_params(fence))
    return None if row is None else to_record(ItemRecord, row)


async def update_item(
    conn: AsyncConnection, record_id: str, changes: ItemChanges, now: datetime, fence: StageFence
) -> ItemRecord | None:
    guard = Guard(
        f"item:{fence_shape(fence)}", lambda: fence_condition(fence, items), fence_params(fence)
    )
    row = await update_versioned(conn, items, "MapItem", record_id, dict(changes), now, None, guard)
    return None if row is None else to_record(ItemRecord, row)


async def claim_suspended_items(
    conn: AsyncConnection,
    now: datetime,
    until: datetime,
    limit: int,
    run_id: str | None,
    plans: Sequence[str] | None,
) -> list[ItemRecord]:
    rows = await claim_due(conn, items, now, until, limit, run_id, plans)
    return sorted((to_record(ItemRecord, row) for row in rows), key=lambda row: row.id)


def _status_among(statuses: tuple[str, ...]) -> ColumnElement[bool]:
    """The item's status is one of `statuses`, written into the SQL (`status_is`): an `IN`
    list is expanding, rendered per call by SQLAlchemy's whole execution layer, where this
    compiles once (`direct`). The statuses are the kernel's own few combinations."""
    return or_(*(status_is(items, status) for status in statuses))


def _items_of_stage(statuses: tuple[str, ...]) -> Select[Any]:
    statement = select(items).where(
        items.c.run_id == bindparam("b_run_id"), items.c.stage_id == bindparam("b_stage_id")
    )
    if statuses:
        statement = statement.where(_status_among(statuses))
    return statement.order_by(items.c.item_index)


async def items_of_stage(
    conn: AsyncConnection, run_id: str, stage_id: str, statuses: Sequence[Status]
) -> list[ItemRecord]:
    """The stage's items (of `statuses`, if any), by index: read as a map stage starts,
    finishes and retries, so compiled once per combination of statuses."""
    wanted = tuple(status.value for status in statuses)
    statement = built_once(("items_of_stage", wanted), lambda: _items_of_stage(wanted))
    rows = await direct.fetch(conn, statement, {"b_run_id": run_id, "b_stage_id": stage_id})
    return [to_record(ItemRecord, row) for row in rows]


def _reset_items(statuses: tuple[str, ...]) -> Update:
    return (
        update(items)
        .where(
            items.c.run_id == bindparam("b_run_id"),
            items.c.stage_id == bindparam("b_stage_id"),
            _status_among(statuses),
        )
        .values(
            status=Status.PENDING.value,
            attempt=0,
            generation=bindparam("u_generation"),
            error=None,
            version=items.c.version + 1,
            updated_at=bindparam("now"),
        )
    )


async def reset_items(
    conn: AsyncConnection,
    run_id: str,
    stage_id: str,
    statuses: Sequence[Status],
    generation: int,
    now: datetime,
) -> int:
    wanted = tuple(status.value for status in statuses)
    if not wanted:  # `IN ()` matched no row; an empty OR is not SQL
        return 0
    statement = built_once(("reset_items", wanted), lambda: _reset_items(wanted))
    params = {"b_run_id": run_id, "b_stage_id": stage_id, "u_generation": generation, "now": now}
    return await direct.execute(conn, statement, params)


def _cancel_items(of_stage: bool) -> Update:
    statement = update(items).where(items.c.run_id == bindparam("b_run_id"), _status_among(_OPEN))
    if of_stage:
        statement = statement.where(items.c.stage_id == bindparam("b_stage_id"))
    return statement.values(
        status=Status.CANCELLED.value,
        completed_at=bindparam("now"),
        version=items.c.version + 1,
        updated_at=bindparam("now"),
    )


async def cancel_items(
    conn: AsyncConnection, run_id: str, stage_id: str | None, now: datetime
) -> int:
    """End the run's open items (of one stage, or all): a run cancelled, a mapped stage
    failed. One statement, compiled once."""
    of_stage = stage_id is not None
    statement = built_once(("cancel_items", of_stage), lambda: _cancel_items(of_stage))
    params = {"b_run_id": run_id, "now": now}
    if of_stage:
        params["b_stage_id"] = stage_id
    return await direct.execute(conn, statement, params)


async def delete_items(conn: AsyncConnection, run_id: str, stage_ids: Sequence[str]) -> None:
    if stage_ids:
        await conn.execute(
            delete(items).where(items.c.run_id == run_id, items.c.stage_id.in_(list(stage_ids)))
        )
