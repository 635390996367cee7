"""The outbox's event ids lose their unique index: an event is named by its run and
sequence.

Every event had a random uuid `id`, unique, so each append inserted into an index
keyed by random text: a random leaf page of it per transaction that appended
events, 11 of the 86 pages a SQLite seq3 run wrote to the WAL. Nothing outside the
store used those ids: plugins receive the event's payload, and the flusher now marks
what it delivered, counts retries and parks events in the dead-letter queue by the
rows it read, found by `position` (SQLite's rowid; PostgreSQL's primary key).
`OutboxRecord.id` is `run_id:sequence`, which `(run_id, sequence)` keeps unique.

The column stays, nullable and unindexed, and keeps the ids already written: workers
of an older wfc, which a rolling deploy runs beside new ones on the upgraded database,
still insert their random ids and mark their deliveries by them (now without an
index: slower, until they stop); new workers write the derived id there for them.

SQLite cannot drop a UNIQUE constraint: the table is rebuilt with its rows,
positions kept (the unpublished ones are delivered in the same order after the
upgrade). PostgreSQL drops the constraint and the NOT NULL. Either way the column becomes
TEXT: a run id may be 64 characters, and `run_id:sequence` is longer than the
VARCHAR(64) the random ids fitted in. A downgrade gives the ids longer than 64
characters a 32-character digest of themselves (PostgreSQL enforces the length; SQLite
does not), which keeps them unique.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_UNPUBLISHED = "published_at IS NULL AND dlq_at IS NULL"
_COLUMNS = (
    "position, id, run_id, sequence, event_type, payload, causation_id, occurred_at, "
    "published_at, retry_count, dlq_at"
)


def _rebuild_outbox(unique_ids: bool) -> None:
    """SQLite: `outbox` again, with its rows and positions; `id` unique and required, or
    neither."""
    op.execute(
        "CREATE TABLE outbox_0017 (position INTEGER NOT NULL, "
        + ("id VARCHAR(64) NOT NULL, " if unique_ids else "id TEXT, ")
        + "run_id VARCHAR(64) NOT NULL, sequence INTEGER NOT NULL, "
        "event_type VARCHAR(64) NOT NULL, payload JSON NOT NULL, "
        "causation_id VARCHAR(200) NOT NULL, occurred_at DATETIME NOT NULL, "
        "published_at DATETIME, retry_count INTEGER DEFAULT 0 NOT NULL, dlq_at DATETIME, "
        "CONSTRAINT pk_outbox PRIMARY KEY (position), "
        + ("CONSTRAINT uq_outbox_id UNIQUE (id), " if unique_ids else "")
        + "CONSTRAINT uq_outbox_run_id_sequence UNIQUE (run_id, sequence))"
    )
    op.execute(f"INSERT INTO outbox_0017 ({_COLUMNS}) SELECT {_COLUMNS} FROM outbox")
    op.execute("DROP TABLE outbox")
    op.execute("ALTER TABLE outbox_0017 RENAME TO outbox")
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["position"],
        sqlite_where=sa.text(_UNPUBLISHED),
    )


_FILL_IDS = "UPDATE outbox SET id = run_id || ':' || sequence WHERE id IS NULL"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_outbox(unique_ids=False)
        return
    op.drop_constraint("uq_outbox_id", "outbox", type_="unique")
    op.alter_column(
        "outbox", "id", existing_type=sa.String(length=64), type_=sa.Text(), nullable=True
    )


def downgrade() -> None:
    op.execute(_FILL_IDS)  # rows a bare insert left without one (wfc writes them all)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_outbox(unique_ids=True)
        return
    op.execute("UPDATE outbox SET id = md5(id) WHERE length(id) > 64")
    op.alter_column(
        "outbox", "id", existing_type=sa.Text(), type_=sa.String(length=64), nullable=False
    )
    op.create_unique_constraint("uq_outbox_id", "outbox", ["id"])
