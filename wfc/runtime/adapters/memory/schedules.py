"""`ScheduleStore` in memory: a dict of frozen records.

No method awaits between reading and writing, so on one event loop each is as
atomic as the SQL stores' single statements: `advance` checks `next_due_at` and
writes in one step, which is what makes one of several kernels sharing this
store win a tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from wfc.runtime.schedule_store import ScheduleRecord, TickRecord


class MemoryScheduleStore:
    """Schedules in a dict by id, with an index by (workflow, name)."""

    def __init__(self) -> None:
        self._rows: dict[str, ScheduleRecord] = {}

    def _find(self, workflow_id: str, name: str) -> ScheduleRecord | None:
        for row in self._rows.values():
            if row.workflow_id == workflow_id and row.name == name:
                return row
        return None

    async def add(self, schedule: ScheduleRecord) -> bool:
        if self._find(schedule.workflow_id, schedule.name) is not None:
            return False
        self._rows[schedule.id] = schedule
        return True

    async def declare(self, schedules: Sequence[ScheduleRecord]) -> None:
        for declared in schedules:
            kept = self._find(declared.workflow_id, declared.name)
            if kept is None:
                self._rows[declared.id] = declared
                continue
            if kept.source != "plan":
                continue
            moved = kept.cron != declared.cron or kept.timezone != declared.timezone
            self._rows[kept.id] = replace(
                kept,
                cron=declared.cron,
                timezone=declared.timezone,
                input=declared.input,
                catch_up=declared.catch_up,
                overlap=declared.overlap,
                next_due_at=declared.next_due_at if moved else kept.next_due_at,
                updated_at=declared.updated_at,
            )

    async def get(self, workflow_id: str, name: str) -> ScheduleRecord | None:
        return self._find(workflow_id, name)

    async def schedules(self, *, workflow_ids: Sequence[str] | None = None) -> list[ScheduleRecord]:
        rows = [
            row
            for row in self._rows.values()
            if workflow_ids is None or row.workflow_id in workflow_ids
        ]
        return sorted(rows, key=lambda row: (row.workflow_id, row.name))

    def _active(self, workflow_ids: Sequence[str]) -> list[ScheduleRecord]:
        return [r for r in self._rows.values() if not r.paused and r.workflow_id in workflow_ids]

    async def due(
        self, now: datetime, workflow_ids: Sequence[str], limit: int
    ) -> list[ScheduleRecord]:
        due = [row for row in self._active(workflow_ids) if row.next_due_at <= now]
        return sorted(due, key=lambda row: (row.next_due_at, row.id))[:limit]

    async def next_due_at(self, workflow_ids: Sequence[str]) -> datetime | None:
        return min((row.next_due_at for row in self._active(workflow_ids)), default=None)

    async def advance(
        self,
        schedule_id: str,
        expected: datetime,
        next_due_at: datetime,
        now: datetime,
        tick: TickRecord | None = None,
    ) -> bool:
        row = self._rows.get(schedule_id)
        if row is None or row.next_due_at != expected:
            return False
        row = replace(row, next_due_at=next_due_at, updated_at=now)
        if tick is not None:
            row = replace(
                row,
                last_tick_at=tick.tick,
                last_outcome=tick.outcome,
                last_run_id=tick.run_id or row.last_run_id,
            )
        self._rows[schedule_id] = row
        return True

    async def set_paused(
        self, schedule_id: str, paused: bool, now: datetime, next_due_at: datetime | None = None
    ) -> bool:
        row = self._rows.get(schedule_id)
        if row is None:
            return False
        self._rows[schedule_id] = replace(
            row, paused=paused, updated_at=now, next_due_at=next_due_at or row.next_due_at
        )
        return True

    async def delete(self, schedule_ids: Sequence[str]) -> int:
        return sum(self._rows.pop(i, None) is not None for i in set(schedule_ids))
