"""`Persistence` in memory: dicts of frozen records, with real rollback.

Transactions are serialised by a lock and roll back by restoring a snapshot of
the tables taken when they began (records are immutable, so a shallow copy
is a snapshot). Calls outside a transaction apply at once. Every record handed
out is the stored immutable value, so callers cannot change stored state.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from wfc.errors import RecordNotFoundError, StaleVersionError
from wfc.runtime.adapters.memory.clock import SystemClock
from wfc.runtime.ports import Clock, Persistence
from wfc.runtime.records import (
    Acquired,
    IdempotencyClaim,
    InProgress,
    ItemChanges,
    ItemRecord,
    JsonObject,
    LogRecord,
    NewOutboxEvent,
    OutboxRecord,
    PlanRecord,
    Replay,
    RunChanges,
    RunClaim,
    RunRecord,
    SignalRecord,
    StageChanges,
    StageFence,
    StageRecord,
    Status,
    WorkerRecord,
)

VersionedT = TypeVar("VersionedT", RunRecord, StageRecord)


@dataclass(frozen=True, slots=True)
class _IdempotencyKey:
    """Replaced, never changed in place: a snapshot copies the table, not the entries."""

    started_at: datetime
    result: JsonObject | None = None


@dataclass(slots=True)
class _Tables:
    runs: dict[str, RunRecord] = field(default_factory=dict)
    stages: dict[str, StageRecord] = field(default_factory=dict)
    stage_ids: dict[tuple[str, str], str] = field(default_factory=dict)
    logs: list[LogRecord] = field(default_factory=list)
    outbox: dict[str, OutboxRecord] = field(default_factory=dict)
    last_sequence: dict[str, int] = field(default_factory=dict)
    keys: dict[tuple[str, str], _IdempotencyKey] = field(default_factory=dict)
    # Items are not in the snapshot (a map of 10,000 items would be copied by every
    # transaction): a transaction journals each item it writes and puts them back.
    plans: dict[str, PlanRecord] = field(default_factory=dict)
    workers: dict[str, WorkerRecord] = field(default_factory=dict)
    items: dict[tuple[str, str], dict[int, ItemRecord]] = field(default_factory=dict)
    item_at: dict[str, tuple[tuple[str, str], int]] = field(default_factory=dict)  # by id
    signals: dict[str, SignalRecord] = field(default_factory=dict)  # by id, in sent order

    def snapshot(self) -> _Tables:
        return _Tables(
            runs=dict(self.runs),
            stages=dict(self.stages),
            stage_ids=dict(self.stage_ids),
            logs=list(self.logs),
            outbox=dict(self.outbox),
            last_sequence=dict(self.last_sequence),
            keys=dict(self.keys),
            plans=dict(self.plans),
            workers=dict(self.workers),
            items=self.items,
            item_at=self.item_at,
            signals=dict(self.signals),
        )


_ItemUndo = list[tuple[tuple[str, str], int, ItemRecord | None]]


class _MemoryStore:
    """The persistence methods over a set of tables (shared by the root and transactions)."""

    def __init__(self, tables: _Tables, clock: Clock, undo: _ItemUndo | None = None) -> None:
        self._t = tables
        self._clock = clock
        self._undo = undo

    # -- runs ------------------------------------------------------------
    async def create_run(self, run: RunRecord) -> None:
        if run.id in self._t.runs:
            raise ValueError(f"run {run.id} already exists")
        self._t.runs[run.id] = run

    async def get_run(self, run_id: str) -> RunRecord | None:
        return self._t.runs.get(run_id)

    async def update_run(
        self, run_id: str, changes: RunChanges, *, expected_version: int | None = None
    ) -> RunRecord:
        return self._versioned(self._t.runs, "WorkflowRun", run_id, dict(changes), expected_version)

    async def claim_next_pending_run(
        self, *, run_id: str | None = None, plans: Sequence[str] | None = None
    ) -> RunClaim | None:
        pending = [
            r
            for r in self._t.runs.values()
            if r.status is Status.PENDING
            and (run_id is None or r.id == run_id)
            and (plans is None or r.plan_fingerprint in plans)
        ]
        if not pending:
            return None
        # Stable sort keeps insertion order among equal (priority, created_at).
        chosen = min(pending, key=lambda r: (-r.priority, r.created_at))
        run = await self.update_run(
            chosen.id, {"status": Status.RUNNING, "started_at": self._clock.now()}
        )
        return RunClaim(run=run, others_pending=len(pending) > 1)

    async def runs_to_adopt(
        self, workflow_ids: Sequence[str], plans: Sequence[str], limit: int
    ) -> list[RunRecord]:
        found = [
            run
            for run in self._t.runs.values()
            if run.status in (Status.PENDING, Status.RUNNING)
            and run.workflow_id in workflow_ids
            and run.plan_fingerprint not in plans
        ]
        return sorted(found, key=lambda run: (run.created_at, run.id))[:limit]

    async def stuck_runs(self, since: datetime) -> list[RunRecord]:
        stuck = []
        for run in self._t.runs.values():
            if run.status is not Status.RUNNING or run.updated_at > since:
                continue
            stages = [s for s in self._t.stages.values() if s.run_id == run.id]
            if all(s.updated_at <= since for s in stages):
                stuck.append(run)
        return sorted(stuck, key=lambda r: r.updated_at)

    async def list_runs(
        self,
        *,
        status: Status | None = None,
        workflow_id: str | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        id_prefix: str | None = None,
    ) -> list[RunRecord]:
        runs = [
            r
            for r in self._t.runs.values()
            if (status is None or r.status is status)
            and (workflow_id is None or r.workflow_id == workflow_id)
            and (before is None or (r.created_at, r.id) < before)
            and (id_prefix is None or r.id.startswith(id_prefix))
        ]
        return sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)[:limit]

    # -- stages ----------------------------------------------------------
    async def upsert_stage(self, create: StageRecord, update: StageChanges) -> StageRecord:
        existing_id = self._t.stage_ids.get((create.run_id, create.stage_id))
        if existing_id is None:
            self._t.stages[create.id] = create
            self._t.stage_ids[(create.run_id, create.stage_id)] = create.id
            return create
        return await self.update_stage(existing_id, update)

    async def start_stage(
        self, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> StageRecord | None:
        existing_id = self._t.stage_ids.get((create.run_id, create.stage_id))
        if existing_id is not None and not fence.holds(self._t.stages[existing_id]):
            return None
        return await self.upsert_stage(create, update)

    async def update_stage(
        self, record_id: str, changes: StageChanges, *, expected_version: int | None = None
    ) -> StageRecord:
        return self._versioned(
            self._t.stages, "WorkflowStage", record_id, dict(changes), expected_version
        )

    async def update_stage_while_running(
        self,
        record_id: str,
        run_id: str,
        changes: StageChanges,
        *,
        fence: StageFence | None = None,
    ) -> StageRecord | None:
        run = self._t.runs.get(run_id)
        row = self._t.stages.get(record_id)
        if row is None:
            raise RecordNotFoundError("WorkflowStage", record_id)
        if run is None or run.status is not Status.RUNNING:
            return None
        if fence is not None and not fence.holds(row):
            return None
        return await self.update_stage(record_id, changes)

    async def lock_run_and_update_stage(
        self,
        run_id: str,
        record_id: str,
        changes: StageChanges,
        *,
        fence: StageFence | None = None,
        expect: tuple[RunRecord, StageRecord] | None = None,
        data: bool = True,  # reading it costs nothing here
    ) -> tuple[RunRecord, StageRecord] | None:
        # `expect` saves reads that cost a database nothing here: always read.
        if run_id not in self._t.runs:
            return None
        run = await self.update_run(run_id, {})
        if run.status is not Status.RUNNING:
            return None
        row = self._t.stages.get(record_id)
        if row is None:
            raise RecordNotFoundError("WorkflowStage", record_id)
        if fence is not None and not fence.holds(row):
            return None
        return run, await self.update_stage(record_id, changes)

    async def get_stage(self, run_id: str, stage_id: str) -> StageRecord | None:
        record_id = self._t.stage_ids.get((run_id, stage_id))
        return None if record_id is None else self._t.stages[record_id]

    async def stages_of_run(self, run_id: str) -> list[StageRecord]:
        return self._stages_of(run_id)

    def _stages_of(self, run_id: str) -> list[StageRecord]:
        rows = [s for s in self._t.stages.values() if s.run_id == run_id]
        return sorted(rows, key=lambda s: (s.execution_group, s.stage_number))

    async def run_with_stages(
        self, run_id: str, *, data: bool = True
    ) -> tuple[RunRecord, list[StageRecord]] | None:
        run = self._t.runs.get(run_id)
        return None if run is None else (run, self._stages_of(run_id))

    async def claim_suspended_stages(
        self,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
    ) -> list[StageRecord]:
        due = [
            s
            for s in self._t.stages.values()
            if s.status is Status.SUSPENDED
            and s.next_poll_at is not None
            and s.next_poll_at <= now
            and (run_id is None or s.run_id == run_id)
            and self._of_plans(s.run_id, plans)
        ]
        due.sort(key=lambda s: (s.next_poll_at or now, s.id))
        return [await self.update_stage(s.id, {"next_poll_at": until}) for s in due[:limit]]

    async def delete_stages(self, record_ids: Sequence[str]) -> None:
        for record_id in record_ids:
            stage = self._t.stages.pop(record_id, None)
            if stage is not None:
                self._t.stage_ids.pop((stage.run_id, stage.stage_id), None)

    # -- items -----------------------------------------------------------
    def _put_item(self, item: ItemRecord | None, key: tuple[str, str], index: int) -> None:
        items = self._t.items.setdefault(key, {})
        if self._undo is not None:
            self._undo.append((key, index, items.get(index)))
        if item is None:
            items.pop(index, None)
        else:
            items[index] = item
            self._t.item_at[item.id] = (key, index)

    async def start_item(
        self, create: ItemRecord, update: ItemChanges, fence: StageFence
    ) -> ItemRecord | None:
        key = (create.run_id, create.stage_id)
        existing = self._t.items.get(key, {}).get(create.item_index)
        if existing is None:
            self._put_item(create, key, create.item_index)
            return create
        if not fence.holds(existing):
            return None
        return self._change_item(existing, update)

    def _change_item(self, item: ItemRecord, changes: ItemChanges) -> ItemRecord:
        values: dict[str, Any] = dict(changes)
        changed = replace(item, **values, version=item.version + 1, updated_at=self._clock.now())
        self._put_item(changed, (item.run_id, item.stage_id), item.item_index)
        return changed

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
        due = [
            item
            for (owner, _), items in self._t.items.items()
            if (run_id is None or owner == run_id) and self._of_plans(owner, plans)
            for item in items.values()
            if item.status is Status.SUSPENDED
            and item.next_poll_at is not None
            and item.next_poll_at <= now
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

    async def cancel_items(self, run_id: str) -> int:
        open_ = (Status.PENDING, Status.RUNNING, Status.SUSPENDED)
        cancelled = 0
        for (owner, _), items in list(self._t.items.items()):
            if owner != run_id:
                continue
            for item in list(items.values()):
                if item.status in open_:
                    self._change_item(
                        item, {"status": Status.CANCELLED, "completed_at": self._clock.now()}
                    )
                    cancelled += 1
        return cancelled

    async def delete_items(self, run_id: str, stage_ids: Sequence[str]) -> None:
        for stage_id in stage_ids:
            for index in list(self._t.items.get((run_id, stage_id), {})):
                self._put_item(None, (run_id, stage_id), index)

    def _versioned(
        self,
        table: dict[str, VersionedT],
        entity: str,
        key: str,
        changes: dict[str, Any],
        expected_version: int | None,
    ) -> VersionedT:
        """Apply `changes` to a run or stage row, bumping its version (spec §2.11)."""
        current = table.get(key)
        if current is None:
            raise RecordNotFoundError(entity, key)
        version: int = current.version
        if expected_version is not None and version != expected_version:
            raise StaleVersionError(entity, key, expected_version, version)
        updated = replace(current, **changes, version=version + 1, updated_at=self._clock.now())
        table[key] = updated
        return updated

    # -- signals -------------------------------------------------------------
    async def add_signal(self, signal: SignalRecord) -> SignalRecord:
        mine = [s for s in self._t.signals.values() if s.run_id == signal.run_id]
        same = next((s for s in mine if s.idempotency_key == signal.idempotency_key), None)
        if same is not None:
            return same
        kept = replace(signal, sequence=max((s.sequence for s in mine), default=0) + 1)
        self._t.signals[kept.id] = kept
        return kept

    async def take_signal(
        self, run_id: str, name: str, consumer: str, at: datetime
    ) -> SignalRecord | None:
        waiting = [
            s
            for s in self._t.signals.values()
            if s.run_id == run_id and s.name == name and s.consumed_at is None
        ]
        if not waiting:
            return None
        first = min(waiting, key=lambda s: s.sequence)
        taken = replace(first, consumed_at=at, consumed_by=consumer)
        self._t.signals[taken.id] = taken
        return taken

    async def signals_of_run(self, run_id: str) -> list[SignalRecord]:
        mine = [s for s in self._t.signals.values() if s.run_id == run_id]
        return sorted(mine, key=lambda s: s.sequence)

    async def children_of(self, run_id: str) -> list[RunRecord]:
        mine = [r for r in self._t.runs.values() if r.parent_run_id == run_id]
        return sorted(mine, key=lambda r: (r.created_at, r.id))

    # -- retention -----------------------------------------------------------
    async def prune_runs(
        self, finished_before: datetime, statuses: Sequence[Status], limit: int
    ) -> list[RunRecord]:
        finished = sorted(
            (
                run
                for run in self._t.runs.values()
                if run.status in statuses
                and run.completed_at is not None
                and run.completed_at < finished_before
            ),
            key=lambda run: (run.completed_at or finished_before, run.id),
        )[:limit]
        doomed = {run.id for run in finished}
        for run_id in doomed:
            del self._t.runs[run_id]
            self._t.last_sequence.pop(run_id, None)
        for record_id, stage in list(self._t.stages.items()):
            if stage.run_id in doomed:
                del self._t.stages[record_id]
                self._t.stage_ids.pop((stage.run_id, stage.stage_id), None)
        self._t.logs = [log for log in self._t.logs if log.run_id not in doomed]
        self._t.signals = {k: s for k, s in self._t.signals.items() if s.run_id not in doomed}
        self._t.outbox = {k: e for k, e in self._t.outbox.items() if e.run_id not in doomed}
        for key in [key for key in self._t.items if key[0] in doomed]:
            for index in list(self._t.items[key]):
                self._put_item(None, key, index)
        return finished

    # -- plans and workers -------------------------------------------------
    async def record_plans(self, plans: Sequence[PlanRecord]) -> None:
        for plan in plans:
            self._t.plans.setdefault(plan.fingerprint, plan)

    async def get_plan(self, fingerprint: str) -> PlanRecord | None:
        return self._t.plans.get(fingerprint)

    async def list_plans(self, limit: int = 500) -> list[PlanRecord]:
        plans = sorted(self._t.plans.values(), key=lambda p: (p.recorded_at, p.fingerprint))
        return plans[::-1][:limit]

    async def announce_worker(self, worker: WorkerRecord) -> None:
        known = self._t.workers.get(worker.worker_id)
        started = worker.started_at if known is None else known.started_at
        self._t.workers[worker.worker_id] = replace(worker, started_at=started)

    async def retire_worker(self, worker_id: str) -> None:
        self._t.workers.pop(worker_id, None)

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:
        return [w for _, w in sorted(self._t.workers.items()) if w.expires_at > now]

    # -- logs ------------------------------------------------------------
    async def add_log(self, log: LogRecord) -> None:
        self._t.logs.append(log)

    async def logs_of_run(self, run_id: str) -> list[LogRecord]:
        return [log for log in self._t.logs if log.run_id == run_id]

    # -- outbox ----------------------------------------------------------
    async def append_outbox(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        appended = []
        for event in events:
            sequence = self._t.last_sequence.get(event.run_id, 0) + 1
            self._t.last_sequence[event.run_id] = sequence
            record = event.numbered(sequence)
            self._t.outbox[record.id] = record
            appended.append(record)
        return appended

    async def unpublished_outbox(self, limit: int) -> list[OutboxRecord]:
        waiting = (
            e for e in self._t.outbox.values() if e.published_at is None and e.dlq_at is None
        )
        return [e for _, e in zip(range(limit), waiting, strict=False)]

    async def mark_published(self, event_ids: Sequence[str], at: datetime) -> None:
        for event_id in event_ids:
            self._change_event(event_id, lambda e: replace(e, published_at=at))

    async def increment_outbox_retry(self, event_id: str) -> int:
        return self._change_event(
            event_id, lambda e: replace(e, retry_count=e.retry_count + 1)
        ).retry_count

    async def move_to_dlq(self, event_id: str, at: datetime) -> None:
        self._change_event(event_id, lambda e: replace(e, dlq_at=at))

    async def replay_dlq(self, limit: int) -> int:
        parked = [e.id for e in self._t.outbox.values() if e.dlq_at is not None][:limit]
        for event_id in parked:
            self._change_event(event_id, lambda e: replace(e, dlq_at=None, retry_count=0))
        return len(parked)

    async def outbox_of_run(self, run_id: str) -> list[OutboxRecord]:
        return sorted(
            (e for e in self._t.outbox.values() if e.run_id == run_id), key=lambda e: e.sequence
        )

    def _change_event(
        self, event_id: str, change: Callable[[OutboxRecord], OutboxRecord]
    ) -> OutboxRecord:
        current = self._t.outbox.get(event_id)
        if current is None:
            raise RecordNotFoundError("OutboxEvent", event_id)
        updated = change(current)
        self._t.outbox[event_id] = updated
        return updated

    # -- idempotency -----------------------------------------------------
    async def acquire_idempotency_key(
        self,
        key: str,
        command_type: str,
        now: datetime,
        stale_after: timedelta | None,
        *,
        predict: bool = False,
    ) -> IdempotencyClaim:
        entry = self._t.keys.get((key, command_type))
        if entry is None:
            self._t.keys[(key, command_type)] = _IdempotencyKey(started_at=now)
            return Acquired()
        if entry.result is not None:
            return Replay(result=entry.result)
        if stale_after is not None and now - entry.started_at >= stale_after:
            self._t.keys[(key, command_type)] = replace(entry, started_at=now)
            return Acquired()
        return InProgress()

    async def complete_idempotency_key(
        self, key: str, command_type: str, result: JsonObject
    ) -> None:
        entry = self._t.keys.get((key, command_type)) or _IdempotencyKey(self._clock.now())
        self._t.keys[(key, command_type)] = replace(entry, result=copy.deepcopy(result))

    async def release_idempotency_key(self, key: str, command_type: str) -> None:
        self._t.keys.pop((key, command_type), None)


class _Transaction(_MemoryStore):
    """A transaction's handle; a nested `transaction()` joins it."""

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        yield self

    @asynccontextmanager
    async def outbox_flusher(self) -> AsyncIterator[Persistence | None]:
        yield self


class MemoryPersistence(_MemoryStore):
    """The full `Persistence` port in memory, with inspection helpers for tests."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(_Tables(), clock or SystemClock())
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Transaction]:
        # Yield first, as a database round trip would, so concurrent callers interleave
        # here exactly where they can on a real database.
        await asyncio.sleep(0)
        async with self._lock:
            before = self._t.snapshot()
            undo: _ItemUndo = []
            try:
                yield _Transaction(self._t, self._clock, undo)
            except BaseException:
                self._restore(before)
                for key, index, item in reversed(undo):
                    items = self._t.items.setdefault(key, {})
                    if item is None:
                        items.pop(index, None)
                    else:
                        items[index] = item
                raise

    @asynccontextmanager
    async def outbox_flusher(self) -> AsyncIterator[Persistence | None]:
        yield self  # one process: its flushes are ordered by the caller

    def _restore(self, snapshot: _Tables) -> None:
        for name in _Tables.__dataclass_fields__:
            setattr(self._t, name, getattr(snapshot, name))

    # -- inspection --------------------------------------------------------
    def all_runs(self) -> list[RunRecord]:
        """Every run, in creation order."""
        return list(self._t.runs.values())

    def all_stages(self) -> list[StageRecord]:
        """Every stage row, in creation order."""
        return list(self._t.stages.values())

    def all_logs(self) -> list[LogRecord]:
        """Every log line, in write order."""
        return list(self._t.logs)

    def all_outbox(self) -> list[OutboxRecord]:
        """Every outbox event, in append order."""
        return list(self._t.outbox.values())

    def idempotency_keys(self) -> dict[tuple[str, str], Any]:
        """`(key, command type)` → stored result, or None while in progress."""
        return {k: v.result for k, v in self._t.keys.items()}

    def all_items(self) -> list[ItemRecord]:
        """Every item row, by run, stage and item index."""
        return [item for items in self._t.items.values() for item in items.values()]

    def clear(self) -> None:
        """Forget everything."""
        self._restore(_Tables())
