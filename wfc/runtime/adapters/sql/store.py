"""The persistence methods over a connection source, shared by `SqlPersistence` (each call
on its own) and a transaction's handle (every call on the transaction's connection).

Each method opens what its source gives (`_connection`: a write transaction;
`_single`: one statement, or statements each safe on their own) and runs the
SQL of its aggregate's module (`runs`, `stages`, `outbox`, `keys`, …).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.runtime.adapters.sql import (
    items,
    keys,
    outbox,
    presence,
    retention,
    run_locked_stages,
    runs,
    signals,
    stages,
    suspended_rows,
)
from wfc.runtime.adapters.sql.drivers import dialect_name
from wfc.runtime.adapters.sql.hand_on import hand_on as hand_on_item
from wfc.runtime.adapters.sql.hand_on import hand_on_in_transaction
from wfc.runtime.job_records import ItemHandOn
from wfc.runtime.ports import Clock, JobTransport
from wfc.runtime.records import (
    IdempotencyClaim,
    ItemChanges,
    ItemRecord,
    JsonObject,
    LogRecord,
    NewOutboxEvent,
    OutboxRecord,
    PlanRecord,
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


class SqlStore:
    """The persistence methods over a connection source."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def _connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a write transaction."""
        raise NotImplementedError

    def _single(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one statement, or statements each safe on its own."""
        return self._connection()

    def _stages_only(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """`_single`, for a call that touches the stages table alone (where a transaction's
        handle keeps a run's held lock held: `sqlite_run_lock`)."""
        return self._single()

    # -- runs ------------------------------------------------------------
    async def create_run(self, run: RunRecord) -> None:
        async with self._single() as conn:
            await runs.create_run(conn, run)

    async def get_run(self, run_id: str) -> RunRecord | None:
        async with self._single() as conn:
            return await runs.get_run(conn, run_id)

    async def update_run(
        self, run_id: str, changes: RunChanges, *, expected_version: int | None = None
    ) -> RunRecord:
        async with self._single() as conn:
            return await runs.update_run(conn, run_id, changes, self._clock.now(), expected_version)

    async def claim_next_pending_run(
        self, *, run_id: str | None = None, plans: Sequence[str] | None = None
    ) -> RunClaim | None:
        return await self._claim_next(run_id, plans)

    async def _claim_next(self, run_id: str | None, plans: Sequence[str] | None) -> RunClaim | None:
        """The claim itself; a SQLite transaction's also advances the run's outbox counter
        (`_SqlTransaction._claim_next`)."""
        async with self._single() as conn:
            return await runs.claim_next_pending_run(conn, self._clock.now(), run_id, plans)

    async def runs_to_adopt(
        self, workflow_ids: Sequence[str], plans: Sequence[str], limit: int
    ) -> list[RunRecord]:
        async with self._single() as conn:
            return await runs.runs_to_adopt(conn, workflow_ids, plans, limit)

    async def stuck_runs(self, since: datetime) -> list[RunRecord]:
        async with self._single() as conn:
            return await runs.stuck_runs(conn, since)

    async def list_runs(
        self,
        *,
        status: Status | None = None,
        workflow_id: str | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        id_prefix: str | None = None,
    ) -> list[RunRecord]:
        async with self._single() as conn:
            return await runs.list_runs(
                conn, status, workflow_id, limit, before=before, id_prefix=id_prefix
            )

    # -- stages ----------------------------------------------------------
    async def upsert_stage(self, create: StageRecord, update: StageChanges) -> StageRecord:
        async with self._stages_only() as conn:
            row = await stages.upsert_stage(conn, create, update, self._clock.now())
        assert row is not None, "an upsert without a fence returns its row"
        return row

    async def start_stage(
        self, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> StageRecord | None:
        async with self._stages_only() as conn:
            return await stages.upsert_stage(conn, create, update, self._clock.now(), fence)

    async def lock_run_and_start_stage(
        self, run_id: str, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> tuple[RunRecord, StageRecord | None]:
        async with self._connection() as conn:
            now = self._clock.now()
            if dialect_name(conn) == "postgresql":
                return await run_locked_stages.lock_run_and_start_stage(
                    conn, run_id, create, update, now, fence
                )
            # SQLite: BEGIN IMMEDIATE holds the file's lock; two statements are two calls.
            run = await runs.update_run(conn, run_id, {}, now, None)
            if run.status is not Status.RUNNING:
                return run, None
            return run, await stages.upsert_stage(conn, create, update, now, fence)

    async def update_stage(
        self, record_id: str, changes: StageChanges, *, expected_version: int | None = None
    ) -> StageRecord:
        async with self._single() as conn:
            return await stages.update_stage(
                conn, record_id, changes, self._clock.now(), expected_version
            )

    async def update_stage_while_running(
        self,
        record_id: str,
        run_id: str,
        changes: StageChanges,
        *,
        fence: StageFence | None = None,
    ) -> StageRecord | None:
        async with self._single() as conn:
            return await stages.update_stage_while_running(
                conn, record_id, run_id, changes, self._clock.now(), fence
            )

    async def lock_run_and_update_stage(
        self,
        run_id: str,
        record_id: str,
        changes: StageChanges,
        *,
        fence: StageFence | None = None,
        expect: tuple[RunRecord, StageRecord] | None = None,
        data: bool = True,
    ) -> tuple[RunRecord, StageRecord] | None:
        async with self._connection() as conn:
            return await run_locked_stages.lock_run_and_update_stage(
                conn, run_id, record_id, changes, self._clock.now(), fence, data, expect
            )

    async def get_stage(self, run_id: str, stage_id: str) -> StageRecord | None:
        async with self._single() as conn:
            return await stages.get_stage(conn, run_id, stage_id)

    async def stages_of_run(self, run_id: str) -> list[StageRecord]:
        async with self._stages_only() as conn:
            return await stages.stages_of_run(conn, run_id)

    async def run_with_stages(
        self, run_id: str, *, data: bool = True, for_stage: tuple[str, int] | None = None
    ) -> tuple[RunRecord, list[StageRecord]] | None:
        async with self._single() as conn:
            return await stages.run_with_stages(conn, run_id, data, for_stage)

    async def count_active_stages(self, run_id: str) -> int:
        async with self._stages_only() as conn:
            return await stages.count_active_stages(conn, run_id)

    async def claim_suspended_stages(
        self,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
    ) -> list[StageRecord]:
        async with self._single() as conn:
            return await suspended_rows.claim_suspended_stages(
                conn, now, until, limit, run_id, plans
            )

    async def delete_stages(self, record_ids: Sequence[str]) -> None:
        async with self._single() as conn:
            await stages.delete_stages(conn, record_ids)

    # -- items of mapped stages --------------------------------------------
    async def start_item(
        self, create: ItemRecord, update: ItemChanges, fence: StageFence
    ) -> ItemRecord | None:
        async with self._single() as conn:
            return await items.start_item(conn, create, update, self._clock.now(), fence)

    async def update_item(
        self, record_id: str, changes: ItemChanges, *, fence: StageFence
    ) -> ItemRecord | None:
        async with self._single() as conn:
            return await items.update_item(conn, record_id, changes, self._clock.now(), fence)

    async def hand_on_item(self, hand_on: ItemHandOn, jobs: JobTransport) -> int | None:
        async with self._single() as conn:
            if dialect_name(conn) != "sqlite":
                return await hand_on_item(conn, hand_on, jobs)
        return await hand_on_in_transaction(self._connection, hand_on, jobs)

    async def claim_suspended_items(
        self,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
    ) -> list[ItemRecord]:
        async with self._single() as conn:
            return await items.claim_suspended_items(conn, now, until, limit, run_id, plans)

    async def items_of_stage(
        self, run_id: str, stage_id: str, *, statuses: Sequence[Status] = ()
    ) -> list[ItemRecord]:
        async with self._single() as conn:
            return await items.items_of_stage(conn, run_id, stage_id, statuses)

    async def reset_items(
        self, run_id: str, stage_id: str, statuses: Sequence[Status], generation: int
    ) -> int:
        async with self._single() as conn:
            return await items.reset_items(
                conn, run_id, stage_id, statuses, generation, self._clock.now()
            )

    async def cancel_items(self, run_id: str, stage_id: str | None = None) -> int:
        async with self._single() as conn:
            return await items.cancel_items(conn, run_id, stage_id, self._clock.now())

    async def delete_items(self, run_id: str, stage_ids: Sequence[str]) -> None:
        async with self._single() as conn:
            await items.delete_items(conn, run_id, stage_ids)

    # -- signals ----------------------------------------------------------
    async def add_signal(self, signal: SignalRecord) -> SignalRecord:
        async with self._connection() as conn:
            return await signals.add_signal(conn, signal)

    async def take_signal(
        self, run_id: str, name: str, consumer: str, at: datetime
    ) -> SignalRecord | None:
        async with self._single() as conn:
            return await signals.take_signal(conn, run_id, name, consumer, at)

    async def signals_of_run(self, run_id: str) -> list[SignalRecord]:
        async with self._single() as conn:
            return await signals.signals_of_run(conn, run_id)

    async def children_of(self, run_id: str) -> list[RunRecord]:
        async with self._single() as conn:
            return await runs.children_of(conn, run_id)

    # -- retention -----------------------------------------------------------
    async def prune_runs(
        self, finished_before: datetime, statuses: Sequence[Status], limit: int
    ) -> list[RunRecord]:
        async with self._connection() as conn:
            return await retention.prune_runs(conn, finished_before, statuses, limit)

    # -- plans and workers -------------------------------------------------
    async def record_plans(self, plans: Sequence[PlanRecord]) -> None:
        async with self._single() as conn:
            await presence.record_plans(conn, plans)

    async def get_plan(self, fingerprint: str) -> PlanRecord | None:
        async with self._single() as conn:
            return await presence.get_plan(conn, fingerprint)

    async def list_plans(self, limit: int = 500) -> list[PlanRecord]:
        async with self._single() as conn:
            return await presence.list_plans(conn, limit)

    async def announce_worker(self, worker: WorkerRecord) -> None:
        async with self._single() as conn:
            await presence.announce_worker(conn, worker)

    async def retire_worker(self, worker_id: str) -> None:
        async with self._single() as conn:
            await presence.retire_worker(conn, worker_id)

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:
        async with self._single() as conn:
            return await presence.live_workers(conn, now)

    # -- logs ------------------------------------------------------------
    async def add_log(self, log: LogRecord) -> None:
        async with self._single() as conn:
            await keys.add_log(conn, log)

    async def logs_of_run(self, run_id: str) -> list[LogRecord]:
        async with self._single() as conn:
            return await keys.logs_of_run(conn, run_id)

    # -- outbox ----------------------------------------------------------
    async def append_outbox(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        if not events:
            return []
        async with self._connection() as conn:
            return await outbox.append(conn, events)

    async def unpublished_outbox(
        self, limit: int, types: frozenset[str] | None = None
    ) -> list[OutboxRecord]:
        async with self._single() as conn:
            return await outbox.unpublished(conn, limit, types)

    async def mark_unwanted_published(
        self, wanted: frozenset[str], at: datetime, limit: int
    ) -> int:
        async with self._single() as conn:
            return await outbox.mark_unwanted_published(conn, wanted, at, limit)

    async def mark_published(self, events: Sequence[OutboxRecord], at: datetime) -> None:
        async with self._single() as conn:
            await outbox.mark_published(conn, events, at)

    async def increment_outbox_retry(self, event: OutboxRecord) -> int:
        async with self._single() as conn:
            return await outbox.increment_retry(conn, event)

    async def move_to_dlq(self, event: OutboxRecord, at: datetime) -> None:
        async with self._single() as conn:
            await outbox.move_to_dlq(conn, event, at)

    async def replay_dlq(self, limit: int) -> int:
        async with self._connection() as conn:
            return await outbox.replay_dlq(conn, limit)

    async def outbox_of_run(self, run_id: str) -> list[OutboxRecord]:
        async with self._single() as conn:
            return await outbox.of_run(conn, run_id)

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
        async with self._single() as conn:
            return await keys.acquire(conn, key, command_type, now, stale_after)

    async def complete_idempotency_key(
        self, key: str, command_type: str, result: JsonObject
    ) -> None:
        async with self._single() as conn:
            await keys.complete(conn, key, command_type, result)

    async def release_idempotency_key(self, key: str, command_type: str) -> None:
        async with self._single() as conn:
            await keys.release(conn, key, command_type)
