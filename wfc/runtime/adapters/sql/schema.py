"""The tables, declared once for SQLite and PostgreSQL (spec §2).

Column names are the record field names, so a row maps onto its record
without a translation table. JSON columns are JSONB on PostgreSQL; instants
are stored in UTC and always come back timezone-aware (`UtcDateTime`).
Finished jobs stay in `jobs` but the dequeue index is partial on PENDING, so
they never slow the hot path down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.types import TypeDecorator

from wfc.runtime.records import Status


class UtcDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC; SQLite keeps no zone, so it is put back on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware ones")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json: Any = JSON().with_variant(JSONB(), "postgresql")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workflow_id", String(200), nullable=False),
    Column("workflow_name", String(200), nullable=False),
    Column("plan_fingerprint", String(80), nullable=False),
    Column("status", String(16), nullable=False),
    Column("input", Json, nullable=False),
    Column("config", Json, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("started_at", UtcDateTime),
    Column("completed_at", UtcDateTime),
    Column("duration_ms", BigInteger),
    Column("output", Json),
    Column("error", Json),
    Column("total_cost", Float, nullable=False, server_default=text("0")),
    Column("total_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("metadata", Json),
    # The run's last outbox sequence: appends take the next ones with one row-locking UPDATE.
    Column("last_sequence", Integer, nullable=False, server_default=text("0")),
    # A child run: the run and stage that started it (`wfc.plan_children`).
    Column("parent_run_id", String(64)),
    Column("parent_stage_id", String(200)),
    # The W3C traceparent its stages' spans join, on any worker (`wfc.observability`).
    Column("trace_context", String(64)),
    Index(None, "workflow_id", "created_at"),
    # Retention: finished runs, oldest first. Partial: a run enters it once, as it finishes,
    # not at its creation and again at its claim.
    Index(
        "ix_runs_status_completed_at",
        "status",
        "completed_at",
        postgresql_where=text("completed_at IS NOT NULL"),
        sqlite_where=text("completed_at IS NOT NULL"),
    ),
    Index(None, "created_at", "id"),  # listing: newest first, paged by keyset
    # Listing one status newest first (`wfc runs list --status`), the maintenance tick's
    # RUNNING runs and adoption's PENDING and RUNNING ones, oldest first.
    Index(None, "status", "created_at", "id"),
    # A run's children; only child runs are in it.
    Index(
        "ix_runs_parent_run_id",
        "parent_run_id",
        postgresql_where=text("parent_run_id IS NOT NULL"),
        sqlite_where=text("parent_run_id IS NOT NULL"),
    ),
)
# Claims: the PENDING runs in the order a claim takes them (best priority, oldest, by id), so
# taking the best one reads one entry, not a sort of every one waiting. Partial, so a run
# leaves it at its claim and never comes back: its finish writes no page of it (4.3 WAL
# frames of a seq3 run's 91 on SQLite before). `status` leads anyway: with the claim's
# status written as a literal (`status_is`) both indexes match it, and SQLite's planner,
# which has no statistics, then takes the one that also gives the order; without `status`
# in it, it took the status index below and sorted.
Index(
    "ix_runs_status_claim_order",
    runs.c.status,
    runs.c.priority.desc(),
    runs.c.created_at,
    runs.c.id,
    postgresql_where=text("status = 'PENDING'"),
    sqlite_where=text("status = 'PENDING'"),
)

stages = Table(
    "stages",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("stage_id", String(200), nullable=False),
    Column("stage_name", String(200), nullable=False),
    Column("stage_number", Integer, nullable=False),
    Column("execution_group", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("config", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("started_at", UtcDateTime),
    Column("completed_at", UtcDateTime),
    Column("duration_ms", BigInteger),
    Column("output_ref", Text),
    Column("suspended_state", Json),
    Column("next_poll_at", UtcDateTime),
    Column("poll_interval_ms", BigInteger),
    Column("max_wait_until", UtcDateTime),
    Column("metrics", Json, nullable=False),
    Column("error", Text),
    # A mapped stage's item counters (`StageRecord.items_*`); 0 for other stages.
    Column("items_total", Integer, nullable=False, server_default=text("0")),
    Column("items_queued", Integer, nullable=False, server_default=text("0")),
    Column("items_next", Integer, nullable=False, server_default=text("0")),
    Column("items_done", Integer, nullable=False, server_default=text("0")),
    Column("items_failed", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("run_id", "stage_id"),
    # The poller's: only SUSPENDED rows, due first (`suspended_rows.claim_suspended`); a stage that
    # never suspends never enters it.
    Index(
        "ix_stages_suspended",
        "next_poll_at",
        "id",
        postgresql_where=text("status = 'SUSPENDED'"),
        sqlite_where=text("status = 'SUSPENDED'"),
    ),
)

# One row per item of a mapped stage that has started; the item's output is held here,
# so gathering a map's results is one read.
items = Table(
    "items",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("stage_id", String(200), nullable=False),
    Column("item_index", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("started_at", UtcDateTime),
    Column("completed_at", UtcDateTime),
    Column("duration_ms", BigInteger),
    Column("output", Json),
    Column("error", Text),
    Column("metrics", Json, nullable=False),
    Column("suspended_state", Json),
    Column("next_poll_at", UtcDateTime),
    Column("poll_interval_ms", BigInteger),
    Column("max_wait_until", UtcDateTime),
    UniqueConstraint("run_id", "stage_id", "item_index"),
    Index(
        "ix_items_suspended",
        "next_poll_at",
        "id",
        postgresql_where=text("status = 'SUSPENDED'"),
        sqlite_where=text("status = 'SUSPENDED'"),
    ),
)

logs = Table(
    "logs",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("stage_record_id", String(64)),
    Column("level", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Column("fields", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "run_id", "position"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("run_id", String(64), nullable=False),
    Column("workflow_id", String(200), nullable=False),
    Column("stage_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("max_attempts", Integer, nullable=False),
    Column("payload", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("run_at", UtcDateTime),
    Column("worker_id", String(200)),
    Column("locked_at", UtcDateTime),
    Column("started_at", UtcDateTime),
    Column("completed_at", UtcDateTime),
    Column("last_error", Text),
    # The plan of the job's run: a worker dequeues only jobs of plans it serves.
    Column("plan_fingerprint", String(80)),
    # Only workers serving the job's queue lease it.
    Column("queue", String(100), nullable=False, server_default="default"),
    # Fleet-wide limits (`wfc.runtime.limits`): at most `concurrency_max` jobs of a key
    # RUNNING at once, at most `rate_max` starts of a key per `rate_window_ms`.
    Column("concurrency_key", String(400)),
    Column("concurrency_max", Integer),
    Column("rate_key", String(400)),
    Column("rate_max", Integer),
    Column("rate_window_ms", Integer),
    Index(
        "ix_jobs_leased",
        "locked_at",
        postgresql_where=text("status = 'RUNNING'"),
        sqlite_where=text("status = 'RUNNING'"),
    ),
    Index(None, "run_id"),
    Index(
        "ix_jobs_running_by_concurrency_key",
        "concurrency_key",
        postgresql_where=text("status = 'RUNNING' AND concurrency_key IS NOT NULL"),
        sqlite_where=text("status = 'RUNNING' AND concurrency_key IS NOT NULL"),
    ),
)
# The dequeue path reads only PENDING jobs: a partial index keeps it small, in the order a
# dequeue takes them (best priority, then first queued), so the best is its first entry,
# not a sort of every PENDING job.
Index(
    "ix_jobs_dequeue",
    jobs.c.priority.desc(),
    jobs.c.position,
    postgresql_where=text("status = 'PENDING'"),
    sqlite_where=text("status = 'PENDING'"),
)

# One row per limit key, locked by a leasing transaction so that checks of one key
# take turns (the count itself is read from `jobs` or `rate_starts`), with the bound an
# operator set in place of the plan's (`wfc limits set`).
limit_locks = Table(
    "limit_locks",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("max_override", Integer),
)

# The starts under each rate key within its window; older ones are deleted as it slides.
rate_starts = Table(
    "rate_starts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Index("ix_rate_starts_key_started_at", "key", "started_at"),
)

outbox = Table(
    "outbox",
    metadata,
    # The event's place in the append order, and the key the flush marks it by. An event
    # needs no id of its own: its run and sequence name it (`OutboxRecord.id`).
    Column("position", Integer, primary_key=True, autoincrement=True),
    # Not read. Written (as `OutboxRecord.id`) for workers of a wfc before revision 0017,
    # which a rolling deploy keeps beside new ones: they insert their own random ids and
    # mark what they delivered by this column. Not indexed, not unique (revision 0017).
    # Text: a run id may be 64 characters, and its events' ids are longer.
    Column("id", Text),
    Column("run_id", String(64), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", Json, nullable=False),
    Column("causation_id", String(200), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime),
    Column("retry_count", Integer, nullable=False, server_default=text("0")),
    Column("dlq_at", UtcDateTime),
    UniqueConstraint("run_id", "sequence"),
    Index(
        "ix_outbox_unpublished",
        "position",
        postgresql_where=text("published_at IS NULL AND dlq_at IS NULL"),
        sqlite_where=text("published_at IS NULL AND dlq_at IS NULL"),
    ),
)

plans = Table(
    "plans",
    metadata,
    Column("fingerprint", String(80), primary_key=True),
    Column("workflow_id", String(200), nullable=False),
    Column("workflow_name", String(200), nullable=False),
    Column("plan", Text, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(200), primary_key=True),
    Column("plans", Json, nullable=False),
    Column("queues", Json),
    Column("started_at", UtcDateTime, nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# -- schedules ---------------------------------------------------------------
# Cron schedules (`wfc.runtime.schedule_store`): one row per (workflow, name). A tick is
# fired by the one worker whose `UPDATE … WHERE next_due_at = :expected` moves the row on.
schedules = Table(
    "schedules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("workflow_id", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("cron", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("input", Json, nullable=False),
    Column("catch_up", String(16), nullable=False),
    Column("overlap", String(16), nullable=False),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("source", String(16), nullable=False),  # "plan" or "cli"
    Column("next_due_at", UtcDateTime, nullable=False),
    Column("last_tick_at", UtcDateTime),
    Column("last_run_id", String(64)),
    Column("last_outcome", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("workflow_id", "name"),
    Index(None, "next_due_at"),
)

# -- signals -----------------------------------------------------------------
# Signals sent to runs (`run.signal`): kept until a stage waiting for the name takes one,
# first sent first (`sequence`); a run's idempotency key names one signal.
signals = Table(
    "signals",
    metadata,
    Column("sequence", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("payload", Json),
    Column("sent_at", UtcDateTime, nullable=False),
    Column("consumed_at", UtcDateTime),
    Column("consumed_by", String(64)),
    UniqueConstraint("run_id", "idempotency_key"),
    Index(None, "run_id", "name", "sequence"),
)


idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("command_type", String(64), primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("result", Json),
)

# On SQLite a table keyed by its text key alone (WITHOUT ROWID): an ordinary one is two
# b-trees, the rows in rowid order and the key's index, and each stage output's upsert wrote
# a page of both (7.5 WAL frames of a seq3 run's 91, for three blobs of 7 bytes); keyed by
# the key, it writes one.
blobs = Table(
    "blobs",
    metadata,
    Column("key", String(1000), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

ai_calls = Table(
    "ai_calls",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("topic", String(500), nullable=False),
    Column("call_type", String(16), nullable=False),
    Column("model_key", String(200), nullable=False),
    Column("model_id", String(200), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("response", Text, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost", Float, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("batch_id", String(200)),
    Index(None, "topic"),
    Index(None, "batch_id"),
)


def _install_wakeups() -> None:
    # Imported here: the wakeup module describes triggers on the tables declared above.
    from wfc.runtime.adapters.sql import run_ends, wakeups

    wakeups.install_on_create(runs, jobs)
    run_ends.install_on_create(runs)


_install_wakeups()


def status_is(table: FromClause, status: str) -> ColumnElement[bool]:
    """`table.status = '<status>'` with the status written into the SQL, not bound.

    The queues' partial indexes (`ix_jobs_dequeue`, `ix_stages_suspended`,
    `ix_items_suspended`) hold one status's rows only, and a planner may use one only
    when it can prove the query's status is that one: PostgreSQL's generic plan of a
    prepared statement (asyncpg prepares every statement) cannot with a bound value,
    and SQLite prepares such a statement again at every run to check it. Only a
    `Status` is written so: nothing else may reach the SQL's text."""
    if status not in _STATUSES:
        raise ValueError(f"not a status: {status!r}")
    return table.c.status == literal_column(f"'{status}'")


_STATUSES = frozenset(Status)
