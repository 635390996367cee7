"""The memory persistence's map items, apart from its runs and stages.

A map stage's items are fenced like stages (`StageFence`: the item's attempt and the
stage's generation) and indexed by stage and by id; `persistence._MemoryStore`
inherits these methods, as it does the outbox's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from wfc.errors import RecordNotFoundError
from wfc.runtime.adapters.memory.tables import TableWriter
from wfc.runtime.copies import changed
from wfc.runtime.job_records import ItemHandOn
from wfc.runtime.ports import Clock, JobTransport
from wfc.runtime.records import ItemChanges, ItemRecord, StageFence, Status


class ItemTables(TableWriter):
    """The map items' `Persistence` methods over the tables, and `_of_plans`, which the
    stages' claims use too."""

    _clock: Clock  # set by the store that inherits these methods

    # -- items -----------------------------------------------------------
    async def start_item(
        self, create: ItemRecord, update: ItemChanges, fence: StageFence
    ) -> ItemRecord | None:
        key = (create.run_id, create.stage_id)
        if fence.stage_running and not self._stage_runs(key, fence.generation):
            return None
        existing = self._t.items.get(key, {}).get(create.item_index)
        if existing is None:
            self._write_item(create, None)
            return create
        if not fence.holds(existing):
            return None
        return self._change_item(existing, update)

    def _stage_runs(self, key: tuple[str, str], generation: int | None) -> bool:
        """Whether the stage's row (run id, stage id) is RUNNING at `generation`."""
        record_id = self._t.stage_ids.get(key)
        row = None if record_id is None else self._t.stages.get(record_id)
        return row is not None and row.status is Status.RUNNING and row.generation == generation

    def _change_item(self, item: ItemRecord, changes: ItemChanges) -> ItemRecord:
        values: dict[str, Any] = dict(changes)
        values.update(version=item.version + 1, updated_at=self._clock.now())
        updated = changed(item, values)
        self._write_item(updated, item)
        return updated

    def _item_by_id(self, record_id: str) -> ItemRecord | None:
        at = self._t.item_at.get(record_id)
        item = None if at is None else self._t.items.get(at[0], {}).get(at[1])
        return item if item is not None and item.id == record_id else None

    async def update_item(
        self, record_id: str, changes: ItemChanges, *, fence: StageFence
    ) -> ItemRecord | None:
        item = self._item_by_id(record_id)
        if item is None:
            raise RecordNotFoundError("MapItem", record_id)
        return self._change_item(item, changes) if fence.holds(item) else None

    async def hand_on_item(self, hand_on: ItemHandOn, jobs: JobTransport) -> int | None:
        return None  # no round trips to save: the caller records it under the run's lock

    def _of_plans(self, run_id: str, plans: Sequence[str] | None) -> bool:
        run = self._t.runs.get(run_id)
        return plans is None or (run is not None and run.plan_fingerprint in plans)

    async def claim_suspended_items(
        self,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
    ) -> list[ItemRecord]:
        suspended = (self._item_by_id(item_id) for item_id in self._t.suspended_items)
        due = [
            item
            for item in suspended
            if item is not None
            and (run_id is None or item.run_id == run_id)
            and item.next_poll_at is not None
            and item.next_poll_at <= now
            and self._of_plans(item.run_id, plans)
        ]
        due.sort(key=lambda item: (item.next_poll_at or now, item.id))
        return [self._change_item(item, {"next_poll_at": until}) for item in due[:limit]]

    async def items_of_stage(
        self, run_id: str, stage_id: str, *, statuses: Sequence[Status] = ()
    ) -> list[ItemRecord]:
        items = self._t.items.get((run_id, stage_id), {})
        return [
            items[index]
            for index in sorted(items)
            if not statuses or items[index].status in statuses
        ]

    async def reset_items(
        self, run_id: str, stage_id: str, statuses: Sequence[Status], generation: int
    ) -> int:
        chosen = await self.items_of_stage(run_id, stage_id, statuses=statuses)
        for item in chosen:
            self._change_item(
                item,
                {"status": Status.PENDING, "attempt": 0, "generation": generation, "error": None},
            )
        return len(chosen)

    async def cancel_items(self, run_id: str, stage_id: str | None = None) -> int:
        open_ = (Status.PENDING, Status.RUNNING, Status.SUSPENDED)
        cancelled = 0
        stage_ids = list(self._t.item_stages_of.get(run_id, ()))
        for of_stage in stage_ids if stage_id is None else [stage_id]:
            for item in list(self._t.items.get((run_id, of_stage), {}).values()):
                if item.status in open_:
                    self._change_item(
                        item, {"status": Status.CANCELLED, "completed_at": self._clock.now()}
                    )
                    cancelled += 1
        return cancelled

    async def delete_items(self, run_id: str, stage_ids: Sequence[str]) -> None:
        for stage_id in stage_ids:
            for item in list(self._t.items.get((run_id, stage_id), {}).values()):
                self._delete_item(item)
