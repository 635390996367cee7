"""`ScheduleStore` on SQLAlchemy Core, for SQLite and PostgreSQL.

Every write that decides something is one statement: `add` is an insert that
does nothing on the (workflow, name) unique constraint, and `advance` an
`UPDATE … WHERE id = :id AND next_due_at = :expected`, so of several workers
firing one tick the database lets exactly one move the schedule on. Statements
run on the task's pinned connection when there is one (`Connections`), so a
worker's orchestrator fires schedules over the connection it already holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.rows import to_record, to_values, upsert_insert
from wfc.runtime.adapters.sql.schema import plans
from wfc.runtime.adapters.sql.schema import schedules as table
from wfc.runtime.records import PlanRecord
from wfc.runtime.schedule_store import ScheduleRecord, TickRecord

_c = table.c
_DEFINITION = ("cron", "timezone", "input", "catch_up", "overlap")


class SqlScheduleStore:
    """Schedules in the `schedules` table of the engine's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._connections = Connections(engine)

    async def add(self, schedule: ScheduleRecord) -> bool:
        async with self._connections.single() as conn:
            statement = upsert_insert(conn, table).values(to_values(schedule))
            statement = statement.on_conflict_do_nothing(index_elements=["workflow_id", "name"])
            result = await conn.execute(statement)
        return bool(result.rowcount)

    async def declare(self, schedules: Sequence[ScheduleRecord]) -> None:
        if not schedules:
            return
        async with self._connections.transaction() as conn:
            for schedule in schedules:
                await conn.execute(_declared(conn, schedule))

    async def get(self, workflow_id: str, name: str) -> ScheduleRecord | None:
        statement = select(table).where(_c.workflow_id == workflow_id, _c.name == name)
        async with self._connections.single() as conn:
            row = (await conn.execute(statement)).first()
        return None if row is None else to_record(ScheduleRecord, row)

    async def schedules(self, *, workflow_ids: Sequence[str] | None = None) -> list[ScheduleRecord]:
        statement = select(table).order_by(_c.workflow_id, _c.name)
        if workflow_ids is not None:
            statement = statement.where(_c.workflow_id.in_(list(workflow_ids)))
        async with self._connections.single() as conn:
            return [to_record(ScheduleRecord, row) for row in await conn.execute(statement)]

    async def due(
        self, now: datetime, workflow_ids: Sequence[str], limit: int
    ) -> list[ScheduleRecord]:
        if not workflow_ids:
            return []
        statement = (
            select(table)
            .where(
                _c.paused.is_(False),
                _c.next_due_at <= now,
                _c.workflow_id.in_(list(workflow_ids)),
            )
            .order_by(_c.next_due_at, _c.id)
            .limit(limit)
        )
        async with self._connections.single() as conn:
            return [to_record(ScheduleRecord, row) for row in await conn.execute(statement)]

    async def next_due_at(self, workflow_ids: Sequence[str]) -> datetime | None:
        if not workflow_ids:
            return None
        statement = select(func.min(_c.next_due_at)).where(
            _c.paused.is_(False), _c.workflow_id.in_(list(workflow_ids))
        )
        async with self._connections.single() as conn:
            value: datetime | None = (await conn.execute(statement)).scalar()
        return value

    async def advance(
        self,
        schedule_id: str,
        expected: datetime,
        next_due_at: datetime,
        now: datetime,
        tick: TickRecord | None = None,
    ) -> bool:
        values: dict[str, Any] = {"next_due_at": next_due_at, "updated_at": now}
        if tick is not None:
            values |= {"last_tick_at": tick.tick, "last_outcome": tick.outcome}
            if tick.run_id is not None:
                values["last_run_id"] = tick.run_id
        statement = (
            update(table)
            .where(and_(_c.id == schedule_id, _c.next_due_at == expected))
            .values(values)
        )
        async with self._connections.single() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount)

    async def set_paused(
        self, schedule_id: str, paused: bool, now: datetime, next_due_at: datetime | None = None
    ) -> bool:
        values: dict[str, Any] = {"paused": paused, "updated_at": now}
        if next_due_at is not None:
            values["next_due_at"] = next_due_at
        statement = update(table).where(_c.id == schedule_id).values(values)
        async with self._connections.single() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount)

    async def delete(self, schedule_ids: Sequence[str]) -> int:
        if not schedule_ids:
            return 0
        statement = delete(table).where(_c.id.in_(list(schedule_ids)))
        async with self._connections.single() as conn:
            result = await conn.execute(statement)
        return int(result.rowcount)


def _declared(conn: Any, schedule: ScheduleRecord) -> Any:
    """The upsert of one plan-declared schedule: a row from the CLI is left alone
    (`WHERE source = 'plan'`), `next_due_at` moves only with the cron or the time zone."""
    statement = upsert_insert(conn, table).values(to_values(schedule))
    new = statement.excluded
    unchanged = and_(_c.cron == new.cron, _c.timezone == new.timezone)
    return statement.on_conflict_do_update(
        index_elements=["workflow_id", "name"],
        set_={
            **{name: new[name] for name in _DEFINITION},
            "next_due_at": case((unchanged, _c.next_due_at), else_=new.next_due_at),
            "updated_at": new.updated_at,
        },
        where=_c.source == "plan",
    )


async def latest_plan(engine: AsyncEngine, workflow_id: str) -> PlanRecord | None:
    """The plan of `workflow_id` recorded last (what `wfc schedules add` checks input
    against), or None when no worker or run recorded one."""
    statement = (
        select(plans)
        .where(plans.c.workflow_id == workflow_id)
        .order_by(plans.c.recorded_at.desc())
        .limit(1)
    )
    async with Connections(engine).single() as conn:
        row = (await conn.execute(statement)).first()
    return None if row is None else to_record(PlanRecord, row)
