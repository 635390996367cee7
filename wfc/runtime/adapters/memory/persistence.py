"""`Persistence` in memory: dicts of frozen records, with real rollback.

Transactions are serialised by a lock; each journals what its writes replaced
and a failed one puts it back (`tables`), so a transaction costs what it
writes, not what the store holds. Calls outside a transaction apply at once.
Every record handed out is the stored immutable value, so callers cannot
change stored state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar

from wfc.errors import RecordNotFoundError, StaleVersionError
from wfc.runtime.adapters.memory.clock import SystemClock
from wfc.runtime.adapters.memory.item_tables import ItemTables
from wfc.runtime.adapters.memory.outbox_keys import OutboxAndKeys
from wfc.runtime.adapters.memory.side_tables import SignalsPlansAndLogs
from wfc.runtime.adapters.memory.tables import (
    Journal,
    Tables,
    rollback,
)
from wfc.runtime.adapters.memory.turns import TransactionLock
from wfc.runtime.contexts import Given
from wfc.runtime.copies import changed
from wfc.runtime.ports import Clock, Persistence
from wfc.runtime.records import (
    ACTIVE,
    ItemRecord,
    LogRecord,
    OutboxRecord,
    RunChanges,
    RunClaim,
    RunRecord,
    StageChanges,
    StageFence,
    StageRecord,
    Status,
    WorkerRecord,
)

VersionedT = TypeVar("VersionedT", RunRecord, StageRecord)
# A run's stage rows as the port returns them: by group, then stage number (in C).
_IN_PLAN_ORDER = attrgetter("execution_group", "stage_number")


class _MemoryStore(ItemTables, OutboxAndKeys, SignalsPlansAndLogs):
    """The persistence methods over a set of tables (shared by the root and transactions)."""

    def __init__(self, tables: Tables, clock: Clock, journal: Journal | None = None) -> None:
        # `TableWriter.__init__` written out (each transaction makes a store): the same fields.
        self._t = tables
        self._journal = journal
        self._clock = clock

    # -- runs ------------------------------------------------------------
    async def create_run(self, run: RunRecord) -> None:
        if run.id in self._t.runs:
            raise ValueError(f"run {run.id} already exists")
        self._write_run(run, None)

    async def get_run(self, run_id: str) -> RunRecord | None:
        return self._t.runs.get(run_id)

    async def update_run(
        self, run_id: str, changes: RunChanges, *, expected_version: int | None = None
    ) -> RunRecord:
        return self._update_run(run_id, changes, expected_version)

    # The writes other methods make call these, not the coroutines: a coroutine made and
    # awaited per inner call was a cost on every stage.
    def _update_run(
        self, run_id: str, changes: RunChanges, expected_version: int | None = None
    ) -> RunRecord:
        current = self._t.runs.get(run_id)
        if current is None:
            raise RecordNotFoundError("WorkflowRun", run_id)
        updated = self._changed(current, "WorkflowRun", changes, expected_version)
        self._write_run(updated, current)
        return updated

    async def claim_next_pending_run(
        self, *, run_id: str | None = None, plans: Sequence[str] | None = None
    ) -> RunClaim | None:
        runs, pending = self._t.runs, self._t.pending_runs
        candidates: Collection[str] = pending
        if run_id is not None:
            candidates = [run_id] if run_id in pending else []
        if not candidates:
            return None
        # By (priority, created_at), then creation order: the claim key the index holds
        # (unique, so the first best is the best). The best of all first, by `min` over the
        # index's keys (one pass in C), without a list of the served ones: filtering every
        # PENDING run in Python for each claim made a burst created at once slow (still
        # linear in the PENDING runs per claim, but a few nanoseconds each).
        chosen = min(candidates, key=pending.__getitem__)
        if plans is not None and runs[chosen].plan_fingerprint not in plans:
            candidates = [r for r in candidates if runs[r].plan_fingerprint in plans]
            if not candidates:
                return None
            chosen = min(candidates, key=pending.__getitem__)
        others_pending = any(
            other != chosen and (plans is None or runs[other].plan_fingerprint in plans)
            for other in candidates
        )
        run = self._update_run(chosen, {"status": Status.RUNNING, "started_at": self._clock.now()})
        return RunClaim(run=run, others_pending=others_pending)

    async def runs_to_adopt(
        self, workflow_ids: Sequence[str], plans: Sequence[str], limit: int
    ) -> list[RunRecord]:
        found = [
            run
            for run in self._open_runs()
            if run.workflow_id in workflow_ids and run.plan_fingerprint not in plans
        ]
        return sorted(found, key=lambda run: (run.created_at, run.id))[:limit]

    def none_idle_since(self, since: datetime) -> bool:
        """Whether every RUNNING run was updated after `since`, so `stuck_runs(since)` is
        empty (asked by the test harness before a tick's stuck-run reaping)."""
        runs = self._t.runs
        for run_id in self._t.running_runs:  # a loop, as in `all_open_on`
            if runs[run_id].updated_at <= since:
                return False
        return True

    def all_open_on(self, plans: Sequence[str]) -> bool:
        """Whether every PENDING and RUNNING run is on one of `plans`, so `runs_to_adopt`
        finds none (asked by the test harness before a tick's adoption)."""
        # Loops, not `all` over generators: a test kernel asks every round of every run.
        t, runs = self._t, self._t.runs
        for run_id in t.pending_runs:
            if runs[run_id].plan_fingerprint not in plans:
                return False
        for run_id in t.running_runs:
            if runs[run_id].plan_fingerprint not in plans:
                return False
        return True

    def lone_pending_run(self) -> RunRecord | None:
        """The PENDING run, if it is the only open run and nothing is suspended: claimed
        now, it is the only run anything in the store can move (asked by the test harness
        before a tick, see `wfc.testing.harness.drive`)."""
        t = self._t
        if len(t.pending_runs) != 1 or t.running_runs or not self.nothing_suspended():
            return None
        return t.runs[next(iter(t.pending_runs))]

    def nothing_open(self) -> bool:
        """Whether no run is PENDING or RUNNING and nothing is suspended: a run created now
        is the only one anything in the store can move (asked by `TestKernel.run` before
        it creates one, see `wfc.testing.harness`)."""
        t = self._t
        return not t.pending_runs and not t.running_runs and self.nothing_suspended()

    def nothing_pending(self) -> bool:
        """Whether no run is PENDING, so a claim finds none (asked by the test harness
        before a tick's claim)."""
        return not self._t.pending_runs

    def worker(self, worker_id: str) -> WorkerRecord | None:
        """The worker's announced record, if any (asked by the test harness before a tick's
        announcement, which would write it as it is)."""
        return self._t.workers.get(worker_id)

    def nothing_suspended(self) -> bool:
        """Whether no stage or item is SUSPENDED, so a poll claims nothing (asked by the
        test harness before a tick's poll)."""
        return not self._t.suspended_stages and not self._t.suspended_items

    async def stuck_runs(self, since: datetime) -> list[RunRecord]:
        stuck = []
        for run_id in self._t.running_runs:
            run = self._t.runs[run_id]
            if run.updated_at > since:
                continue
            if all(s.updated_at <= since for s in self._stages_of(run_id)):
                stuck.append(run)
        order = self._t.run_order
        return sorted(stuck, key=lambda r: (r.updated_at, order[r.id]))

    def _open_runs(self) -> list[RunRecord]:
        """The PENDING and RUNNING runs, from their indexes."""
        runs = self._t.runs
        return [runs[r] for r in self._t.pending_runs] + [runs[r] for r in self._t.running_runs]

    async def list_runs(
        self,
        *,
        status: Status | None = None,
        workflow_id: str | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        id_prefix: str | None = None,
    ) -> list[RunRecord]:
        if status is Status.PENDING:
            held = [self._t.runs[r] for r in self._t.pending_runs]
        elif status is Status.RUNNING:
            held = [self._t.runs[r] for r in self._t.running_runs]
        else:
            held = list(self._t.runs.values())
        runs = [
            r
            for r in held
            if (status is None or r.status is status)
            and (workflow_id is None or r.workflow_id == workflow_id)
            and (before is None or (r.created_at, r.id) < before)
            and (id_prefix is None or r.id.startswith(id_prefix))
        ]
        return sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)[:limit]

    # -- stages ----------------------------------------------------------
    async def upsert_stage(self, create: StageRecord, update: StageChanges) -> StageRecord:
        return self._upsert_stage(create, update)

    def _upsert_stage(self, create: StageRecord, update: StageChanges) -> StageRecord:
        existing_id = self._t.stage_ids.get((create.run_id, create.stage_id))
        if existing_id is None:
            self._write_stage(create, self._t.stages.get(create.id))
            return create
        return self._update_stage(existing_id, update)

    async def start_stage(
        self, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> StageRecord | None:
        existing_id = self._t.stage_ids.get((create.run_id, create.stage_id))
        if existing_id is not None and not fence.holds(self._t.stages[existing_id]):
            return None
        return self._upsert_stage(create, update)

    async def lock_run_and_start_stage(
        self, run_id: str, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> tuple[RunRecord, StageRecord | None]:
        run = await self.update_run(run_id, {})
        if run.status is not Status.RUNNING:
            return run, None
        return run, await self.start_stage(create, update, fence)

    async def update_stage(
        self, record_id: str, changes: StageChanges, *, expected_version: int | None = None
    ) -> StageRecord:
        return self._update_stage(record_id, changes, expected_version)

    def _update_stage(
        self, record_id: str, changes: StageChanges, expected_version: int | None = None
    ) -> StageRecord:
        current = self._t.stages.get(record_id)
        if current is None:
            raise RecordNotFoundError("WorkflowStage", record_id)
        updated = self._changed(current, "WorkflowStage", changes, expected_version)
        self._write_stage(updated, current)
        return updated

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
        return self._update_stage(record_id, changes)

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
        run = self._update_run(run_id, {})
        if run.status is not Status.RUNNING:
            return None
        row = self._t.stages.get(record_id)
        if row is None:
            raise RecordNotFoundError("WorkflowStage", record_id)
        if fence is not None and not fence.holds(row):
            return None
        return run, self._update_stage(record_id, changes)

    async def get_stage(self, run_id: str, stage_id: str) -> StageRecord | None:
        record_id = self._t.stage_ids.get((run_id, stage_id))
        return None if record_id is None else self._t.stages[record_id]

    async def stages_of_run(self, run_id: str) -> list[StageRecord]:
        return self._stages_of(run_id)

    def _stages_of(self, run_id: str) -> list[StageRecord]:
        rows = self._unsorted_stages_of(run_id)
        rows.sort(key=_IN_PLAN_ORDER)
        return rows

    def _unsorted_stages_of(self, run_id: str) -> list[StageRecord]:
        stages = self._t.stages
        return [stages[k] for k in self._t.stages_of.get(run_id, ())]

    async def run_with_stages(
        self, run_id: str, *, data: bool = True, for_stage: tuple[str, int] | None = None
    ) -> tuple[RunRecord, list[StageRecord]] | None:
        run = self._t.runs.get(run_id)
        if run is None:
            return None
        if for_stage is None:
            return run, self._stages_of(run_id)
        own, group = for_stage
        # The filter written out, not a `keep` callback: a call per row of every stage's run.
        rows = [
            s
            for s in self._unsorted_stages_of(run_id)
            if s.execution_group < group or s.stage_id == own
        ]
        rows.sort(key=_IN_PLAN_ORDER)
        return run, rows

    async def count_active_stages(self, run_id: str) -> int:
        stages = self._t.stages
        return sum(stages[k].status in ACTIVE for k in self._t.stages_of.get(run_id, ()))

    async def claim_suspended_stages(
        self,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
    ) -> list[StageRecord]:
        stages = self._t.stages
        due = [
            s
            for s in (stages[k] for k in self._t.suspended_stages)
            if s.next_poll_at is not None
            and s.next_poll_at <= now
            and (run_id is None or s.run_id == run_id)
            and self._of_plans(s.run_id, plans)
        ]
        due.sort(key=lambda s: (s.next_poll_at or now, s.id))
        return [self._update_stage(s.id, {"next_poll_at": until}) for s in due[:limit]]

    async def delete_stages(self, record_ids: Sequence[str]) -> None:
        found = (self._t.stages.get(record_id) for record_id in dict.fromkeys(record_ids))
        self._delete_stages([stage for stage in found if stage is not None])

    def _changed(
        self,
        current: VersionedT,
        entity: str,
        changes: Mapping[str, Any],
        expected_version: int | None,
    ) -> VersionedT:
        """`current` (a run or stage row) with `changes` and its version bumped (spec §2.11);
        the caller's `changes` are left as they are."""
        version: int = current.version
        if expected_version is not None and version != expected_version:
            raise StaleVersionError(entity, current.id, expected_version, version)
        bumped = {**changes, "version": version + 1, "updated_at": self._clock.now()}
        return changed(current, bumped)

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
        if finished:
            self._delete_runs({run.id for run in finished})
        return finished


class _Transaction(_MemoryStore):
    """A transaction's handle; a nested `transaction()` joins it."""

    def transaction(self) -> Given[_Transaction]:
        return Given(self)

    def outbox_flusher(self) -> Given[Persistence | None]:
        return Given(self)


class _Opened:
    """One transaction of a `MemoryPersistence`: holds its lock and rolls back on errors."""

    __slots__ = ("_journal", "_store")

    def __init__(self, store: MemoryPersistence) -> None:
        self._store = store
        self._journal: Journal = []

    async def __aenter__(self) -> _Transaction:
        store = self._store
        if _must_yield(store):
            await asyncio.sleep(0)
        if not store._lock.take_now():
            await store._lock.take()
        return _Transaction(store._t, store._clock, self._journal)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> None:
        try:
            if kind is not None:
                rollback(self._journal)
        finally:
            self._store._lock.give_back()


# At most this many transactions in a row begin without a turn of the event loop.
_YIELD_EVERY = 32


def _must_yield(store: MemoryPersistence) -> bool:
    """Whether a transaction yields to the event loop before it begins, as a database round
    trip would, so that concurrent callers interleave here exactly where they can on a
    real database: whenever another callback is ready to run (another task's step, a
    future's waiter, a thread's result). With none ready, the turn would only poll the
    selector and the due timers (about 20 k instructions, 3 % of a three-stage run): then it
    is taken every `_YIELD_EVERY`th transaction, so timers and I/O still run (later, by
    at most that many) during a long series of transactions that never waits. A loop
    that does not show what is ready (uvloop) is yielded to every time."""
    store._unyielded += 1
    if store._unyielded < _YIELD_EVERY and not getattr(asyncio.get_running_loop(), "_ready", 1):
        return False
    store._unyielded = 0
    return True


class MemoryPersistence(_MemoryStore):
    """The full `Persistence` port in memory, with inspection helpers for tests."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(Tables(), clock or SystemClock())
        self._lock = TransactionLock()
        self._unyielded = 0  # transactions begun since the last yield (`_must_yield`)

    def transaction(self) -> _Opened:
        return _Opened(self)

    def outbox_flusher(self) -> Given[Persistence | None]:
        return Given(self)  # one process: its flushes are ordered by the caller

    # -- inspection --------------------------------------------------------
    def all_runs(self) -> list[RunRecord]:
        """Every run, in creation order."""
        return list(self._t.runs.values())

    def all_stages(self) -> list[StageRecord]:
        """Every stage row, in creation order."""
        return list(self._t.stages.values())

    def all_logs(self) -> list[LogRecord]:
        """Every log line, in write order."""
        return list(self._t.logs.values())

    def all_outbox(self) -> list[OutboxRecord]:
        """Every outbox event, in append order."""
        return [self._event(key) for key in list(self._t.outbox)]

    def idempotency_keys(self) -> dict[tuple[str, str], Any]:
        """`(key, command type)` → stored result, or None while in progress."""
        return {k: v.result for k, v in self._t.keys.items()}

    def all_items(self) -> list[ItemRecord]:
        """Every item row, by run, stage and item index."""
        return [items[i] for items in self._t.items.values() for i in sorted(items)]

    def clear(self) -> None:
        """Forget everything."""
        empty = Tables()
        for column in fields(Tables):  # in place: open transaction handles share the tables
            setattr(self._t, column.name, getattr(empty, column.name))
