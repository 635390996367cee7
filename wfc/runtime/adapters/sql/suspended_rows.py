"""The poller's claim of due SUSPENDED rows, for stages and for the items of mapped stages.

One statement moves each due row's next poll on as it returns it, so two pollers (two
workers, or a worker and `wfc` on another machine) never poll the same row at once:
PostgreSQL's `SKIP LOCKED` lets them pass each other, SQLite's one writer serializes them.
It is the same query for both tables, which is why it lives apart from either's SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.rows import built_once, to_record
from wfc.runtime.adapters.sql.runs import plan_among, plan_params
from wfc.runtime.adapters.sql.schema import runs, stages, status_is
from wfc.runtime.records import StageRecord, Status


def claim_suspended(table: Table, *only: ColumnElement[bool]) -> Any:
    """Claim the due SUSPENDED rows of `stages` or `items` (that also meet `only`): each
    moved on to `until`."""
    due = (
        select(table.c.id)
        .where(
            status_is(table, Status.SUSPENDED.value),
            table.c.next_poll_at <= bindparam("now"),
            *only,
        )
        .order_by(table.c.next_poll_at, table.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)  # PostgreSQL: pollers never wait on each other
        .cte(f"due_{table.name}")
    )
    return (
        update(table)
        .where(table.c.id == due.c.id, status_is(table, Status.SUSPENDED.value))
        .values(
            next_poll_at=bindparam("until"),
            version=table.c.version + 1,
            updated_at=bindparam("now"),
        )
        .returning(*table.c)
    )


async def claim_due(
    conn: AsyncConnection,
    table: Table,
    now: datetime,
    until: datetime,
    limit: int,
    run_id: str | None,
    plans: Sequence[str] | None,
) -> list[Mapping[str, Any]]:
    """One statement: the due SUSPENDED rows of `table` (of that run; of runs of those
    plans), each moved on to `until` as it is returned. Built once per shape."""
    if plans is not None and not plans:
        return []
    count = None if plans is None else len(plans)

    def build() -> Any:
        only: list[ColumnElement[bool]] = []
        if run_id is not None:
            only.append(table.c.run_id == bindparam("only_run_id"))
        if count is not None:
            of_plan = plan_among(runs.c.plan_fingerprint, count)
            only.append(exists().where(runs.c.id == table.c.run_id, of_plan))
        return claim_suspended(table, *only)

    statement = built_once(("claim_due", table.name, run_id is not None, count), build)
    params: dict[str, Any] = {"now": now, "until": until, "limit": limit}
    params |= plan_params(plans or ()) | ({} if run_id is None else {"only_run_id": run_id})
    return await direct.fetch(conn, statement, params)


async def claim_suspended_stages(
    conn: AsyncConnection,
    now: datetime,
    until: datetime,
    limit: int,
    run_id: str | None = None,
    plans: Sequence[str] | None = None,
) -> list[StageRecord]:
    """One statement: the due SUSPENDED rows, each moved on to `until` as it is returned."""
    rows = await claim_due(conn, stages, now, until, limit, run_id, plans)
    return sorted((to_record(StageRecord, row) for row in rows), key=lambda row: row.id)
