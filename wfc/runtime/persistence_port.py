"""The persistence port: runs, stages, logs, the outbox and idempotency keys.

The largest of the ports (`wfc.runtime.ports`), in a module of its own so that each
stays readable; `ports` offers it with the others, and the kernel and the adapters
import it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Protocol

from wfc.runtime.job_port import JobTransport
from wfc.runtime.job_records import ItemHandOn
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


class Persistence(Protocol):
    """Runs, stages, logs, the outbox and idempotency keys.

    `transaction()` yields a handle with the same methods whose writes commit
    together when the block exits and are rolled back when it raises. Methods
    called on the persistence itself each commit on their own.
    """

    def transaction(self) -> AbstractAsyncContextManager[Persistence]:
        """A scope whose writes commit or roll back together."""
        ...

    # -- runs ------------------------------------------------------------
    async def create_run(self, run: RunRecord) -> None:
        """Insert a new run."""

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run, or None."""

    async def update_run(
        self, run_id: str, changes: RunChanges, *, expected_version: int | None = None
    ) -> RunRecord:
        """Apply `changes`, bump the version; `StaleVersionError` when `expected_version` differs."""
        ...

    async def claim_next_pending_run(
        self, *, run_id: str | None = None, plans: Sequence[str] | None = None
    ) -> RunClaim | None:
        """Move the best PENDING run (priority, then age) to RUNNING; None when there is none.
        With `run_id`, that run only; with `plans`, only runs created with one of these plan
        fingerprints (the plans the claimer serves: a run of another plan waits for a
        worker that serves it). `others_pending` counts only runs the claimer could take."""
        ...

    async def runs_to_adopt(
        self, workflow_ids: Sequence[str], plans: Sequence[str], limit: int
    ) -> list[RunRecord]:
        """PENDING or RUNNING runs of these workflows created with a plan not in `plans`
        (candidates for a worker with a newer plan of their workflow), oldest first."""
        ...

    async def stuck_runs(self, since: datetime) -> list[RunRecord]:
        """RUNNING runs with no run or stage update after `since`, least recently updated first."""
        ...

    async def list_runs(
        self,
        *,
        status: Status | None = None,
        workflow_id: str | None = None,
        limit: int = 50,
        before: tuple[datetime, str] | None = None,
        id_prefix: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (by `created_at`, then id), optionally filtered: by status, by
        workflow, to ids starting with `id_prefix`, and to those after `before`, the
        (`created_at`, id) of the last run of the previous page (keyset paging: a page
        deep into many runs costs what the first one does, and runs created meanwhile do
        not shift it)."""
        ...

    # -- stages ----------------------------------------------------------
    async def upsert_stage(self, create: StageRecord, update: StageChanges) -> StageRecord:
        """Insert `create` unless (run, stage id) exists; otherwise apply `update` (and bump)."""
        ...

    async def start_stage(
        self, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> StageRecord | None:
        """`upsert_stage` for a delivery starting the stage (`job.execute`'s first phase):
        the row already there is updated only if it passes `fence`. None, with nothing
        written, when it does not (a later delivery started the stage, or it finished)."""
        ...

    async def lock_run_and_start_stage(
        self, run_id: str, create: StageRecord, update: StageChanges, fence: StageFence
    ) -> tuple[RunRecord, StageRecord | None]:
        """Lock the run's row (bump its version, as `update_run(run_id, {})` does) and, if
        it is RUNNING, `start_stage(create, update, fence)`: one statement where the
        database allows, for the start of a stage its worker dequeued. The run as locked,
        and the stage's row as started, or None when the run is not RUNNING or the row
        fails `fence` (the stage is then left as it was). `RecordNotFoundError` when the
        run is missing."""
        ...

    async def update_stage(
        self, record_id: str, changes: StageChanges, *, expected_version: int | None = None
    ) -> StageRecord:
        """Apply `changes` to the stage row with this record id."""
        ...

    async def update_stage_while_running(
        self,
        record_id: str,
        run_id: str,
        changes: StageChanges,
        *,
        fence: StageFence | None = None,
    ) -> StageRecord | None:
        """Apply `changes` to the stage row only if the run `run_id` is RUNNING and the row
        passes `fence`; None, with nothing written, when either fails (a stage outcome's
        guarded write, spec §4.6: a late attempt's outcome is a ghost)."""
        ...

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
        """Lock the run's row (bump its version, as `update_run(run_id, {})` does) and, if
        it is RUNNING and the stage row `record_id` passes `fence`, apply `changes` to that
        row: one statement where the database allows, for the outcome transaction of every
        completed stage. None when the run is missing or not RUNNING, or the row fails the
        fence; then the stage is left as it was (the version bump stands: the caller rolls
        its transaction back). `RecordNotFoundError` when the run is RUNNING but the stage
        row is missing.

        `expect` (in a transaction, as its first call): the run and the stage row as the
        caller last read them, which it takes to be still true. An adapter may then
        answer from them — the run one version on, the row with `changes` — without
        reading, and check them as the transaction commits. Until then the transaction
        may write (a stage row it creates must be new; the run's own updates and events
        are the locked run's) but not read: a read raises `ExpectationFailed`, and so
        does a commit that finds the run, the row, a new row or the job it completes
        otherwise than taken. Nothing is written then; the caller does the transaction
        again without `expect`. Adapters may ignore `expect` and read."""
        ...

    async def get_stage(self, run_id: str, stage_id: str) -> StageRecord | None:
        """The stage row of this run, or None."""

    async def stages_of_run(self, run_id: str) -> list[StageRecord]:
        """The run's stage rows by execution group, then stage number."""
        ...

    async def run_with_stages(
        self, run_id: str, *, data: bool = True, for_stage: tuple[str, int] | None = None
    ) -> tuple[RunRecord, list[StageRecord]] | None:
        """The run and its stage rows (as `stages_of_run` orders them), read together —
        one round trip for what `job.execute` and `run.transition` read first — or None.
        `data=False` (here and in `lock_run_and_update_stage`): the run's input, config and
        output may be left unread (then `{}`, `{}`, None): an item of a map needs the run's
        state alone, and its list may be the run's whole input. `for_stage` (a stage id
        and its execution group): only the rows that stage's execution reads, its own and
        those of earlier groups, not its siblings' — so a stage's start costs the same
        whatever the width of its group."""
        ...

    async def count_active_stages(self, run_id: str) -> int:
        """How many of the run's stage rows are PENDING, RUNNING or SUSPENDED: one small
        answer, however many rows, for a parallel stage's outcome to tell whether it
        finished its group last (in its transaction, after the run's lock)."""
        ...

    async def claim_suspended_stages(
        self,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
    ) -> list[StageRecord]:
        """Claim up to `limit` SUSPENDED stage rows whose `next_poll_at` is at or before
        `now`, soonest first: each moves its `next_poll_at` to `until` (and its version on)
        in one atomic write, so no other poller sees it due before then, and is returned
        as written. A poller fences its outcome on that version (`StageFence.polled`); one
        that dies leaves the stage due again at `until`. With `run_id`, that run's only."""
        ...

    async def delete_stages(self, record_ids: Sequence[str]) -> None:
        """Delete these stage rows."""

    # -- items of mapped stages --------------------------------------------
    async def start_item(
        self, create: ItemRecord, update: ItemChanges, fence: StageFence
    ) -> ItemRecord | None:
        """Insert `create` unless (run, stage id, item index) exists; otherwise apply
        `update` to the row there if it passes `fence` (None, with nothing written, when it
        does not: a later delivery started the item, or it finished)."""
        ...

    async def update_item(
        self, record_id: str, changes: ItemChanges, *, fence: StageFence
    ) -> ItemRecord | None:
        """Apply `changes` to the item row if it passes `fence` (its outcome's fenced
        write); None, with nothing written, when it does not."""
        ...

    async def hand_on_item(self, hand_on: ItemHandOn, jobs: JobTransport) -> int | None:
        """Record a completed item that is not the last of its pass as one write, without
        locking its run: `ItemHandOn` says what it writes and what must still hold. The
        next item's index (its job queued through `jobs`'s table, or leased to the worker
        handing off, as `JobTransport.enqueue` would) when it was written; None, with
        nothing written, when it was not — a fence did not hold, the item is the last or
        one that reports progress, or the store does not write it so — and the caller
        records the item under the run's lock instead. A store may always answer None."""
        ...

    async def claim_suspended_items(
        self,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
    ) -> list[ItemRecord]:
        """`claim_suspended_stages` for the items of mapped stages: each due SUSPENDED item
        moved on to `until` (and its version on) as it is returned."""
        ...

    async def items_of_stage(
        self, run_id: str, stage_id: str, *, statuses: Sequence[Status] = ()
    ) -> list[ItemRecord]:
        """The item rows of one mapped stage of a run by item index (only those in
        `statuses`, when given)."""
        ...

    async def reset_items(
        self, run_id: str, stage_id: str, statuses: Sequence[Status], generation: int
    ) -> int:
        """Put the items in `statuses` back to PENDING at attempt 0 and `generation` (a
        rerun of failed items); how many."""
        ...

    async def cancel_items(self, run_id: str, stage_id: str | None = None) -> int:
        """Mark the run's unfinished items CANCELLED (the run was cancelled), or with
        `stage_id` that stage's only (it failed on an item); how many."""
        ...

    async def delete_items(self, run_id: str, stage_ids: Sequence[str]) -> None:
        """Delete the item rows of these stages of the run."""

    # -- signals (`run.signal`, `wfc.runtime.kernel.signals`) -------------------
    async def add_signal(self, signal: SignalRecord) -> SignalRecord:
        """Keep `signal`, its `sequence` given after every other of its run; or, when the run
        has one under its idempotency key already, that one (nothing written)."""
        ...

    async def take_signal(
        self, run_id: str, name: str, consumer: str, at: datetime
    ) -> SignalRecord | None:
        """Mark the run's first unconsumed signal of `name` (by sequence) consumed by
        `consumer` (a stage row id) at `at`, and return it as written; None when there is
        none. A signal is taken once: the write is conditional on it being unconsumed."""
        ...

    async def signals_of_run(self, run_id: str) -> list[SignalRecord]:
        """The run's signals in the order they were sent."""
        ...

    # -- child runs (`wfc.runtime.kernel.children`) ----------------------------
    async def children_of(self, run_id: str) -> list[RunRecord]:
        """The runs whose `parent_run_id` is `run_id` (started by its stages), oldest first
        (by `created_at`, then id)."""
        ...

    # -- retention -----------------------------------------------------------
    async def prune_runs(
        self, finished_before: datetime, statuses: Sequence[Status], limit: int
    ) -> list[RunRecord]:
        """Delete up to `limit` runs in `statuses` (finished ones) that finished before
        `finished_before`, oldest first, with their stages, items, signals, logs and outbox
        events, in one transaction; the runs deleted (their jobs and blobs are the caller's)."""
        ...

    # -- plans and workers -------------------------------------------------
    async def record_plans(self, plans: Sequence[PlanRecord]) -> None:
        """Keep these plans; one already kept (same fingerprint) is left as it is."""

    async def get_plan(self, fingerprint: str) -> PlanRecord | None:
        """The kept plan with this fingerprint, or None."""

    async def list_plans(self, limit: int = 500) -> list[PlanRecord]:
        """Up to `limit` kept plans, the most recently recorded first (the dashboard lists
        the plans runs were created with and workers serve)."""
        ...

    async def announce_worker(self, worker: WorkerRecord) -> None:
        """Record that this worker is alive until `worker.expires_at`, serving `plans`
        (its `started_at` is kept from its first announcement)."""

    async def retire_worker(self, worker_id: str) -> None:
        """Forget a worker that stopped."""

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:
        """The workers whose announcement has not expired at `now`, by id."""
        ...

    # -- logs ------------------------------------------------------------
    async def add_log(self, log: LogRecord) -> None:
        """Insert a log line."""

    async def logs_of_run(self, run_id: str) -> list[LogRecord]:
        """The run's log lines in the order they were written."""
        ...

    # -- outbox ----------------------------------------------------------
    async def append_outbox(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        """Append events, each run's sequence continuing gap-free from its last one. In a
        transaction that took its lock as expected (`lock_run_and_update_stage(expect=)`)
        the sequences are given only as it commits: the records returned carry 0."""
        ...

    async def unpublished_outbox(
        self, limit: int, types: frozenset[str] | None = None
    ) -> list[OutboxRecord]:
        """Unpublished events not in the DLQ, in the order they were appended; of `types`
        only, when given."""
        ...

    async def mark_unwanted_published(
        self, wanted: frozenset[str], at: datetime, limit: int
    ) -> int:
        """Mark published, without reading them, up to `limit` of the oldest unpublished
        events (not in the DLQ) whose type is not in `wanted`: no sink delivers them, so
        reading their payloads would be wasted. Returns how many were marked."""
        ...

    async def mark_published(self, events: Sequence[OutboxRecord], at: datetime) -> None:
        """Record that these events (as `unpublished_outbox` read them) were delivered."""

    async def increment_outbox_retry(self, event: OutboxRecord) -> int:
        """Count a failed delivery of an event `unpublished_outbox` read; returns the new
        count."""
        ...

    async def move_to_dlq(self, event: OutboxRecord, at: datetime) -> None:
        """Park an event (as `unpublished_outbox` read it) that failed too often."""

    async def replay_dlq(self, limit: int) -> int:
        """Put up to `limit` parked events back in line (retry count reset); returns how many."""
        ...

    def outbox_flusher(self) -> AbstractAsyncContextManager[Persistence | None]:
        """The right to flush the outbox, for the block: the persistence to read and mark
        events through, or None while another flusher holds it. One flusher at a time
        keeps a run's events in order whatever the number of workers (PostgreSQL: a
        transaction-level advisory lock, held while the block runs; a single-process store
        needs none)."""
        ...

    async def outbox_of_run(self, run_id: str) -> list[OutboxRecord]:
        """Every event of the run by sequence (for inspection and tests)."""
        ...

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
        """Take the key, or report its stored result, or that someone else holds it.

        An in-progress key older than `stale_after` is taken over (its start reset to `now`).

        `predict` (for a command whose one transaction completes its key): an adapter may
        answer `Acquired` without writing, and write the key with its result when that
        transaction completes it; the transaction's commit then raises `ExpectationFailed`,
        having written nothing, if the key was there. The caller acquires it again without
        `predict` to learn what it is.
        """
        ...

    async def complete_idempotency_key(
        self, key: str, command_type: str, result: JsonObject
    ) -> None:
        """Store the command's result; later acquires replay it."""

    async def release_idempotency_key(self, key: str, command_type: str) -> None:
        """Forget the key (the command failed); no error when absent."""
