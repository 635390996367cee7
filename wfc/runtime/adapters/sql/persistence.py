"""`Persistence` on SQLAlchemy Core: one transaction per `transaction()` block.

Methods called on `SqlPersistence` itself each run on their own: those that
are one statement (or statements each safe alone) in autocommit, the others
in a short transaction; inside `async with persistence.transaction() as tx:` every call
on `tx` shares one connection and commits (or rolls back) with the block.
The methods are `store.SqlStore`'s; the SQL lives in one module per aggregate (`runs`,
`stages`, `outbox`, `keys`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.memory.clock import SystemClock
from wfc.runtime.adapters.sql import (
    direct,
    drivers,
    keys,
    outbox,
    predicted,
    run_locked_stages,
    runs,
    stages,
)
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.drivers import dialect_name
from wfc.runtime.adapters.sql.sqlite_run_lock import HeldLock
from wfc.runtime.adapters.sql.store import SqlStore
from wfc.runtime.adapters.sql.transaction_blocks import Written
from wfc.runtime.contexts import Given
from wfc.runtime.ports import Clock, Persistence
from wfc.runtime.records import (
    Acquired,
    IdempotencyClaim,
    JsonObject,
    NewOutboxEvent,
    OutboxRecord,
    RunChanges,
    RunClaim,
    RunRecord,
    StageChanges,
    StageFence,
    StageRecord,
    Status,
)

# SQLite: the events a claim's transaction appends for its run as a rule, `workflow:started`
# and its one first stage's `stage:started`; the claim advances the run's counter by them.
CLAIM_EVENTS = 2
# SQLite: the events a run's create appends (`workflow:created`): a run created and claimed
# in one transaction (`kernel.claim.create_and_claim`) appends them with the claim's.
CREATE_EVENTS = 1
# SQLite: the events a stage's outcome appends for its run as a rule when it locks the run
# reading it (a fan-out's sibling: its `stage:completed` and the next one's `stage:started`);
# the lock advances the run's counter by them.
LOCK_EVENTS = 2


class Ahead(NamedTuple):
    """SQLite: a run's outbox counter advanced in this transaction ahead of its events:
    where it stands (`last`) and by how many events not appended yet (`guessed`)."""

    last: int
    guessed: int


class _SqlTransaction(SqlStore):
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
        # SQLite: runs claimed or locked here whose counters were advanced by a guess of the
        # events to come (`CLAIM_EVENTS`, `LOCK_EVENTS`), not matched by their events yet
        # (`_advanced`); whatever is left is taken back at the end (`_settle_guesses`).
        self._ahead: dict[str, Ahead] = {}

    @property
    def claims_at_outcome(self) -> bool:
        """Whether a run's last outcome may claim the next PENDING run in this transaction
        (`kernel.completion._claim_next`). Not on PostgreSQL: its last outcome is one
        statement when its reads are predicted (`lock_run_and_update_stage(expect=)`),
        which a claim's read would undo, and its claim is one statement of its own
        anyway, so nothing would be saved; its slot claims as it frees up."""
        return dialect_name(self._conn) != "postgresql"

    async def _write_new_run(self, *, with_events: Sequence[NewOutboxEvent] = ()) -> None:
        run, self._new_run = self._new_run, None
        if run is not None:
            await runs.create_run(self._conn, run, last_sequence=len(with_events))

    async def _write_held_lock(self) -> None:
        held = self._held_lock
        if held is not None:
            await held.write(self._conn)
            # Only once written: a write that failed (the run moved) stays due, so the
            # transaction cannot commit without it even if its caller went on.
            self._held_lock = None

    def _connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        # Whatever comes may read or write the run: a held lock and a new run are written.
        return Written(self, run_too=True)

    def _stages_only(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """The connection for a call that touches no run row (the stages table alone): a
        held lock stays held (`sqlite_run_lock`)."""
        return Written(self, run_too=False)

    def transaction(self) -> AbstractAsyncContextManager[_SqlTransaction]:
        return Given(self)

    def outbox_flusher(self) -> AbstractAsyncContextManager[Persistence | None]:
        return Given(self)  # inside a transaction already: the caller's

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
        await self._settle_guesses()

    async def _claim_next(self, run_id: str | None, plans: Sequence[str] | None) -> RunClaim | None:
        """SQLite: the claim also advances the run's outbox counter by the events its
        transaction appends as a rule (`CLAIM_EVENTS`), so they are inserted without a
        statement of their own to advance it (`_advanced`). Under BEGIN IMMEDIATE
        nothing else writes until the commit, and a transaction that rolls back takes the
        advance back with it."""
        if dialect_name(self._conn) != "sqlite":
            return await super()._claim_next(run_id, plans)
        guess = CLAIM_EVENTS
        new = self._new_run
        if new is not None and run_id in (None, new.id):
            # A run created here, its events not appended yet: most likely the one claimed
            # (a create claims where a slot is free, so few runs wait), its events with the
            # claim's. When another run is claimed, the difference is one UPDATE, as before.
            guess += CREATE_EVENTS
        async with self._claim_connection() as conn:
            claimed = await runs.claim_counted(conn, self._clock.now(), run_id, plans, events=guess)
        if claimed is None:
            return None
        claim, last = claimed
        self._guessed(claim.run.id, last, guess)
        return claim

    def _claim_connection(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """The claim's connection. A run's held lock stays held across the claim, to be
        written with that run's events (`_append_here`), unless the run will be PENDING:
        the claim reads and writes PENDING runs only, and the held run is not one of them
        unless its changes make it so. If the run has moved since it was read (not RUNNING
        at the version expected), its lock's write fails when it is made, with its events
        or at the end (`finish`), and the claim rolls back with the rest of the
        transaction. Under BEGIN IMMEDIATE when in the transaction it is written changes
        nothing anyone can see (`sqlite_run_lock`)."""
        held = self._held_lock
        return Written(self, run_too=held is not None and held.run.status == Status.PENDING)

    async def _append_here(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        """SQLite, with a run claimed or locked in this transaction: each run's counter is
        advanced once for all its events here (where it was advanced ahead, by the
        difference only; where its lock is held, by that lock's write; else by
        `outbox.reserve`), its events numbered on from there in the order given, and all
        of them inserted in one statement. A finished run's last outcome that claims the
        next run used to send three counter UPDATEs and two INSERTs here (the claim's
        advance taken back, then each run's own); now one INSERT. An advance whose events
        do not come is taken back at the end (`_settle_guesses`)."""
        counts = Counter(event.run_id for event in events)
        async with self._stages_only() as conn:  # a held lock is written with its events
            next_of = {
                run_id: await self._advanced(conn, run_id, count) - count + 1
                for run_id, count in counts.items()
            }
            batch: list[OutboxRecord] = []
            for event in events:
                sequence = next_of[event.run_id]
                next_of[event.run_id] = sequence + 1
                batch.append(event.numbered(sequence))
            await outbox.insert_numbered(conn, batch)
        return batch

    async def _advanced(self, conn: AsyncConnection, run_id: str, count: int) -> int:
        """The counter of `run_id` advanced by `count` events: its `last_sequence` after."""
        ahead = self._ahead.pop(run_id, None)
        if ahead is not None:
            if count == ahead.guessed:
                return ahead.last
            return await outbox.advance_counter(conn, run_id, count - ahead.guessed)
        held = self._held_lock
        if held is not None and held.run.id == run_id:
            last = await held.write(conn, count)  # the lock, with the counter's advance
            self._held_lock = None
            return last
        return await outbox.reserve(conn, run_id, count)

    def _guessed(self, run_id: str, last: int, guessed: int) -> None:
        """`run_id`'s counter now stands at `last`, advanced by `guessed` events not appended
        yet; on top of an earlier guess for the same run (two locks of it before its
        events), the guesses add up."""
        earlier = self._ahead.get(run_id)
        total = guessed if earlier is None else earlier.guessed + guessed
        self._ahead[run_id] = Ahead(last, total)

    async def _settle_guesses(self) -> None:
        """Take each advance back whose events never came."""
        ahead, self._ahead = self._ahead, {}
        for run_id, left in ahead.items():
            await outbox.advance_counter(self._conn, run_id, -left.guessed)

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
            if dialect_name(self._conn) == "sqlite" and run_locked_stages.expectable(
                run_id, record_id, fence, expect
            ):
                return await self._hold_lock(changes, expect)
        if dialect_name(self._conn) == "sqlite" and self._prediction is None:
            return await self._lock_counted(run_id, record_id, changes, fence)
        return await super().lock_run_and_update_stage(
            run_id, record_id, changes, fence=fence, data=data, expect=expect
        )

    async def _lock_counted(
        self, run_id: str, record_id: str, changes: StageChanges, fence: StageFence | None
    ) -> tuple[RunRecord, StageRecord] | None:
        """SQLite, the reading lock (`run_locked_stages.lock_run_and_update_stage`): the
        run's lock also advances its outbox counter by the events such a transaction
        appends as a rule (`LOCK_EVENTS`), so they are numbered without a counter UPDATE
        of their own (`_advanced`), as after a claim. A fan-out's sibling wrote the run
        twice, the lock and then the counter. The guess is registered before anything
        else can fail, and settled at the end if the events never came."""
        async with self._connection() as conn:
            now = self._clock.now()
            run_row = await run_locked_stages.lock_counted(conn, run_id, now, LOCK_EVENTS)
            if run_row is None:
                return None
            self._guessed(run_id, int(run_row["last_sequence"]), LOCK_EVENTS)
            return await run_locked_stages.stage_under_lock(
                conn, run_row, record_id, changes, now, fence
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
            return await super().upsert_stage(create, update)
        await stages.insert_stage(self._conn, create)  # predicted new: fails the commit if not
        return create

    async def create_run(self, run: RunRecord) -> None:
        await self._write_new_run()
        self._new_run = run

    async def append_outbox(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        if self._prediction is not None:
            return self._prediction.append(events)
        new = self._new_run
        if new is not None and events and all(event.run_id == new.id for event in events):
            await self._write_new_run(with_events=events)
            return await outbox.append_to_new_run(self._conn, events)
        if events and (self._ahead or self._held_lock is not None):
            return await self._append_here(events)
        return await super().append_outbox(events)

    async def complete_idempotency_key(
        self, key: str, command_type: str, result: JsonObject
    ) -> None:
        info = drivers.info_of(self._conn)
        predicted_key = info.get(keys.PREDICTED)
        if predicted_key is not None and predicted_key[:2] == (key, command_type):
            del info[keys.PREDICTED]  # acquired by prediction: written only now
            if not direct.on_driver(self._conn):  # SQLite: checked at once
                await keys.insert_completed_now(
                    self._conn, key, command_type, predicted_key[2], result
                )
                return
            await keys.insert_completed(self._conn, key, command_type, predicted_key[2], result)
            self.key_predicted = True
            return
        await keys.complete(self._conn, key, command_type, result)  # the run can wait


class _Transaction:
    """`SqlPersistence.transaction()`: a connection's transaction (`Connections`) with a
    `_SqlTransaction` on it, finished just before it commits; a failed commit of an
    idempotency key acquired by prediction is `ExpectationFailed` (`_key_was_there`). The
    steps and their order are those of the `asynccontextmanager` it replaced: the
    block's exception (or `finish`'s) goes to the connection's transaction, which rolls
    back, and then through `_key_was_there`."""

    __slots__ = ("_block", "_clock", "_connections", "_tx")

    def __init__(self, connections: Connections, clock: Clock) -> None:
        self._connections = connections
        self._clock = clock
        self._tx: _SqlTransaction | None = None

    async def __aenter__(self) -> _SqlTransaction:
        self._block = block = self._connections.transaction()
        self._tx = _SqlTransaction(await block.__aenter__(), self._clock)
        return self._tx

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: Any
    ) -> None:
        tx, block = self._tx, self._block
        assert tx is not None
        try:  # (the connection's transaction never suppresses an exception)
            if error is None:
                try:
                    await tx.finish()
                except BaseException as failed:
                    await block.__aexit__(type(failed), failed, failed.__traceback__)
                    raise
                await block.__aexit__(None, None, None)
            else:
                await block.__aexit__(kind, error, trace)
        except DBAPIError as failed:
            if _key_was_there(tx, failed):
                raise ExpectationFailed(_KEY_WAS_THERE) from failed
            raise
        if isinstance(error, DBAPIError) and _key_was_there(tx, error):
            raise ExpectationFailed(_KEY_WAS_THERE) from error


_KEY_WAS_THERE = "the idempotency key was there already"


def _key_was_there(tx: _SqlTransaction, error: DBAPIError) -> bool:
    """Whether `error` is how the statement that wrote an idempotency key acquired by
    prediction fails when the key was there already (`keys.insert_completed`)."""
    return tx.key_predicted and _sqlstate(error) == _DIVISION_BY_ZERO


# The lock one outbox flusher holds for a transaction (an arbitrary, fixed 64-bit key).
_TRY_OUTBOX_LOCK = text("SELECT pg_try_advisory_xact_lock(7304115523301171013)")


class SqlPersistence(SqlStore):
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

    def transaction(self) -> AbstractAsyncContextManager[_SqlTransaction]:
        return _Transaction(self._connections, self._clock)

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
                drivers.info_of(conn)[keys.PREDICTED] = (key, command_type, now)
                return Acquired()
            return await keys.acquire(conn, key, command_type, now, stale_after)

    async def release_idempotency_key(self, key: str, command_type: str) -> None:
        async with self._single() as conn:
            info = drivers.info_of(conn)
            predicted_key = info.get(keys.PREDICTED)
            if predicted_key is not None and predicted_key[:2] == (key, command_type):
                del info[keys.PREDICTED]  # never written: nothing to release
                return
            await keys.release(conn, key, command_type)


def _predicts_keys(conn: AsyncConnection) -> bool:
    """PostgreSQL on asyncpg, and SQLite: the stores whose transactions write a predicted
    key (`_SqlTransaction.complete_idempotency_key`)."""
    return direct.on_driver(conn) or dialect_name(conn) == "sqlite"


_DIVISION_BY_ZERO = "22012"  # how a statement with writes `expected` to change rows fails


def _sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)
