"""`Persistence` on SQLAlchemy Core: one transaction per `transaction()` block.

Methods called on `SqlPersistence` itself each run on their own: those that
are one statement (or statements each safe alone) in autocommit, the others
in a short transaction; inside `async with persistence.transaction() as tx:` every call
on `tx` shares one connection and commits (or rolls back) with the block.
The SQL lives in one module per aggregate (`runs`, `stages`, `outbox`, `keys`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.memory.clock import SystemClock
from wfc.runtime.adapters.sql import (
    direct,
    items,
    keys,
    outbox,
    predicted,
    presence,
    retention,
    runs,
    signals,
    stages,
)
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.hand_on import hand_on as hand_on_item
from wfc.runtime.adapters.sql.hand_on import hand_on_in_transaction
from wfc.runtime.adapters.sql.sqlite_run_lock import HeldLock
from wfc.runtime.ports import Clock, JobTransport, Persistence
from wfc.runtime.records import (
    Acquired,
    IdempotencyClaim,
    ItemChanges,
    ItemHandOn,
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


class _SqlStore:
    """The persistence methods over a connection source."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def _connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a write transaction."""
        raise NotImplementedError

    def _single(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one statement, or statements each safe on its own."""
        return self._connection()

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
        async with self._single() as conn:
            row = await stages.upsert_stage(conn, create, update, self._clock.now())
        assert row is not None, "an upsert without a fence returns its row"
        return row

    async def start_stage(
        self, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> StageRecord | None:
        async with self._single() as conn:
            return await stages.upsert_stage(conn, create, update, self._clock.now(), fence)

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
            return await stages.lock_run_and_update_stage(
                conn, run_id, record_id, changes, self._clock.now(), fence, data, expect
            )

    async def get_stage(self, run_id: str, stage_id: str) -> StageRecord | None:
        async with self._single() as conn:
            return await stages.get_stage(conn, run_id, stage_id)

    async def stages_of_run(self, run_id: str) -> list[StageRecord]:
        async with self._single() as conn:
            return await stages.stages_of_run(conn, run_id)

    async def run_with_stages(
        self, run_id: str, *, data: bool = True, for_stage: tuple[str, int] | None = None
    ) -> tuple[RunRecord, list[StageRecord]] | None:
        async with self._single() as conn:
            return await stages.run_with_stages(conn, run_id, data, for_stage)

    async def count_active_stages(self, run_id: str) -> int:
        async with self._single() as conn:
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
            return await stages.claim_suspended_stages(conn, now, until, limit, run_id, plans)

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
            if conn.dialect.name != "sqlite":
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

    async def unpublished_outbox(self, limit: int) -> list[OutboxRecord]:
        async with self._single() as conn:
            return await outbox.unpublished(conn, limit)

    async def mark_published(self, event_ids: Sequence[str], at: datetime) -> None:
        async with self._single() as conn:
            await outbox.mark_published(conn, event_ids, at)

    async def increment_outbox_retry(self, event_id: str) -> int:
        async with self._single() as conn:
            return await outbox.increment_retry(conn, event_id)

    async def move_to_dlq(self, event_id: str, at: datetime) -> None:
        async with self._single() as conn:
            await outbox.move_to_dlq(conn, event_id, at)

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


class _SqlTransaction(_SqlStore):
    """A transaction's handle; a nested `transaction()` joins it.

    A run it creates is written with the run's first outbox events, so the run's
    event counter starts at their number instead of being advanced by a statement
    of its own: `run.create` is then writes alone, held until commit and sent as one
    statement (`direct.commit`). Whatever else the transaction calls first (anything
    but completing an idempotency key, which cannot see runs) writes the run at once.
    """

    def __init__(self, conn: AsyncConnection, clock: Clock) -> None:
        super().__init__(clock)
        self._conn = conn
        self._new_run: RunRecord | None = None  # created here, not written yet
        self._held_lock: HeldLock | None = None  # SQLite: a run's lock, not written yet
        self._prediction: predicted.Prediction | None = None  # reads answered, not made
        self.key_predicted = False  # it writes an idempotency key acquired by prediction

    async def _write_new_run(self, *, with_events: Sequence[NewOutboxEvent] = ()) -> None:
        run, self._new_run = self._new_run, None
        if run is not None:
            await runs.create_run(self._conn, run, last_sequence=len(with_events))

    async def _write_held_lock(self) -> None:
        held, self._held_lock = self._held_lock, None
        if held is not None:
            await held.write(self._conn)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        await self._write_held_lock()  # whatever comes may read or write the run
        await self._write_new_run()
        yield self._conn

    @asynccontextmanager
    async def _stages_only(self) -> AsyncIterator[AsyncConnection]:
        """The connection for a call that touches no run row (the stages table alone): a
        held lock stays held (`sqlite_run_lock`)."""
        await self._write_new_run()
        yield self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqlTransaction]:
        yield self

    @asynccontextmanager
    async def outbox_flusher(self) -> AsyncIterator[Persistence | None]:
        yield self  # inside a transaction already: the caller's

    async def finish(self) -> None:
        """Write what waits for the transaction's end; called just before it commits."""
        prediction, self._prediction = self._prediction, None
        if prediction is not None:
            try:
                await direct.send_predicted(self._conn, partial(predicted.statement, prediction))
            except DBAPIError as error:
                if _sqlstate(error) not in predicted.FAILED_PREDICTION:
                    raise  # a lost connection, say: as for any transaction
                raise ExpectationFailed(f"the prediction did not hold: {error.orig}") from error
        await self._write_held_lock()
        await self._write_new_run()

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
        """With `expect`, as the transaction's first call on PostgreSQL, the whole
        transaction becomes one statement sent at commit (`predicted`). The statement
        checks the row's version as read, which the fence held at (else it reads)."""
        if expect is not None and self._new_run is None:
            run, row = expect
            if (
                run.id == run_id
                and row.id == record_id
                and (fence is None or fence.holds(row))
                and direct.predict(self._conn, predicted.RESERVED)
            ):
                self._prediction = predicted.Prediction.of_lock(
                    run, row, changes, self._clock.now()
                )
                return self._prediction.run, self._prediction.stage
            if self._conn.dialect.name == "sqlite" and stages.expectable(
                run_id, record_id, fence, expect
            ):
                return await self._hold_lock(changes, expect)
        return await super().lock_run_and_update_stage(
            run_id, record_id, changes, fence=fence, data=data, expect=expect
        )

    async def _hold_lock(
        self, changes: StageChanges, expect: tuple[RunRecord, StageRecord]
    ) -> tuple[RunRecord, StageRecord]:
        """SQLite: the stage written now at the version expected, the run's lock held to
        be written with its next write (`sqlite_run_lock`): both answered from `expect`."""
        await self._write_held_lock()
        run, row = expect
        now = self._clock.now()
        written = await stages.update_stage_as_expected(self._conn, changes, now, row)
        self._held_lock = HeldLock.of(run, now)
        return self._held_lock.run, written

    async def update_run(
        self, run_id: str, changes: RunChanges, *, expected_version: int | None = None
    ) -> RunRecord:
        held = self._held_lock
        if held is not None and held.covers(run_id, expected_version):
            return held.fold(changes, self._clock.now())
        if self._prediction is None:
            return await super().update_run(run_id, changes, expected_version=expected_version)
        return self._prediction.update_run(run_id, changes, expected_version, self._clock.now())

    async def upsert_stage(self, create: StageRecord, update: StageChanges) -> StageRecord:
        if self._prediction is None:
            async with self._stages_only() as conn:
                row = await stages.upsert_stage(conn, create, update, self._clock.now())
            assert row is not None, "an upsert without a fence returns its row"
            return row
        await stages.insert_stage(self._conn, create)  # predicted new: fails the commit if not
        return create

    async def start_stage(
        self, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> StageRecord | None:
        async with self._stages_only() as conn:
            return await stages.upsert_stage(conn, create, update, self._clock.now(), fence)

    async def stages_of_run(self, run_id: str) -> list[StageRecord]:
        async with self._stages_only() as conn:
            return await stages.stages_of_run(conn, run_id)

    async def count_active_stages(self, run_id: str) -> int:
        async with self._stages_only() as conn:
            return await stages.count_active_stages(conn, run_id)

    async def create_run(self, run: RunRecord) -> None:
        await self._write_new_run()
        self._new_run = run

    async def append_outbox(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        if self._prediction is not None:
            return self._prediction.append(events)
        held = self._held_lock
        if held is not None and events and all(event.run_id == held.run.id for event in events):
            self._held_lock = None  # written now, with the counter's advance
            last = await held.write(self._conn, len(events))
            return await outbox.insert_reserved(self._conn, events, last)
        new = self._new_run
        if new is None or not events or any(event.run_id != new.id for event in events):
            return await super().append_outbox(events)
        await self._write_new_run(with_events=events)
        return await outbox.append_to_new_run(self._conn, events)

    async def complete_idempotency_key(
        self, key: str, command_type: str, result: JsonObject
    ) -> None:
        predicted_key = self._conn.info.get(keys.PREDICTED)
        if predicted_key is not None and predicted_key[:2] == (key, command_type):
            del self._conn.info[keys.PREDICTED]  # acquired by prediction: written only now
            if not direct.on_driver(self._conn):  # SQLite: checked at once
                await keys.insert_completed_now(
                    self._conn, key, command_type, predicted_key[2], result
                )
                return
            await keys.insert_completed(self._conn, key, command_type, predicted_key[2], result)
            self.key_predicted = True
            return
        await keys.complete(self._conn, key, command_type, result)  # the run can wait


# The lock one outbox flusher holds for a transaction (an arbitrary, fixed 64-bit key).
_TRY_OUTBOX_LOCK = text("SELECT pg_try_advisory_xact_lock(7304115523301171013)")


class SqlPersistence(_SqlStore):
    """The `Persistence` port on an async SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        super().__init__(clock or SystemClock())
        self.engine = engine
        self._connections = Connections(engine)

    def _connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._connections.transaction()

    def _single(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._connections.single()

    @asynccontextmanager
    async def outbox_flusher(self) -> AsyncIterator[Persistence | None]:
        """PostgreSQL: a transaction holding the outbox's advisory lock, or None when another
        flusher holds it. SQLite: no transaction (its write lock would stop every other
        writer while plugins run); one worker per file delivers in order."""
        if self.engine.dialect.name != "postgresql":
            yield self
            return
        async with self.transaction() as tx:
            async with tx._connection() as conn:
                held = await conn.scalar(_TRY_OUTBOX_LOCK)
            yield tx if held else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqlTransaction]:
        tx: _SqlTransaction | None = None
        try:
            async with self._connections.transaction() as conn:
                tx = _SqlTransaction(conn, self._clock)
                yield tx
                await tx.finish()
        except DBAPIError as error:
            if tx is not None and tx.key_predicted and _sqlstate(error) == _DIVISION_BY_ZERO:
                raise ExpectationFailed("the idempotency key was there already") from error
            raise

    async def acquire_idempotency_key(
        self,
        key: str,
        command_type: str,
        now: datetime,
        stale_after: timedelta | None,
        *,
        predict: bool = False,
    ) -> IdempotencyClaim:
        """With `predict` and a pinned connection (the command's transaction will run on
        it): `Acquired`, with nothing sent; the transaction writes the key (PostgreSQL: in
        its one statement; SQLite: as its last statement, `keys.insert_completed_now`)."""
        async with self._single() as conn:
            if predict and self._connections.pinned_here() and _predicts_keys(conn):
                conn.info[keys.PREDICTED] = (key, command_type, now)
                return Acquired()
            return await keys.acquire(conn, key, command_type, now, stale_after)

    async def release_idempotency_key(self, key: str, command_type: str) -> None:
        async with self._single() as conn:
            predicted_key = conn.info.get(keys.PREDICTED)
            if predicted_key is not None and predicted_key[:2] == (key, command_type):
                del conn.info[keys.PREDICTED]  # never written: nothing to release
                return
            await keys.release(conn, key, command_type)


def _predicts_keys(conn: AsyncConnection) -> bool:
    """PostgreSQL on asyncpg, and SQLite: the stores whose transactions write a predicted
    key (`_SqlTransaction.complete_idempotency_key`)."""
    return direct.on_driver(conn) or conn.dialect.name == "sqlite"


_DIVISION_BY_ZERO = "22012"  # how a statement with writes `expected` to change rows fails


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)
