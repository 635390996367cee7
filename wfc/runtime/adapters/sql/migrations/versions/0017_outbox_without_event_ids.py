"""The outbox without its random event ids: an event is named by its run and sequence.

Every event had a random uuid `id`, unique, so each append inserted into an index
keyed by random text: a random leaf page of it per transaction that appended
events, 11 of the 86 pages a SQLite seq3 run wrote to the WAL. Nothing outside the
store used those ids: plugins receive the event's payload, and the flusher marks
what it delivered, counts retries and parks events in the dead-letter queue by the
rows it read, now found by `position` (SQLite's rowid; PostgreSQL's primary key).
`OutboxRecord.id` is now `run_id:sequence`, which `(run_id, sequence)` already keeps
unique; old rows get that id too, as they are read.

SQLite cannot drop a column under a UNIQUE constraint: the table is rebuilt with its
rows, positions kept (the unpublished ones are delivered in the same order after
the upgrade). PostgreSQL drops the column and its constraint. Downgrading gives the
column back, filled with the derived ids.

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
_KEPT = (
    "position, run_id, sequence, event_type, payload, causation_id, occurred_at, "
    "published_at, retry_count, dlq_at"
)


def _rebuild_outbox(with_ids: bool) -> None:
    """SQLite: `outbox` again, with its rows and positions, with or without `id`."""
    op.execute(
        "CREATE TABLE outbox_0017 (position INTEGER NOT NULL, "
        + ("id VARCHAR(64) NOT NULL, " if with_ids else "")
        + "run_id VARCHAR(64) NOT NULL, sequence INTEGER NOT NULL, "
        "event_type VARCHAR(64) NOT NULL, payload JSON NOT NULL, "
        "causation_id VARCHAR(200) NOT NULL, occurred_at DATETIME NOT NULL, "
        "published_at DATETIME, retry_count INTEGER DEFAULT 0 NOT NULL, dlq_at DATETIME, "
        "CONSTRAINT pk_outbox PRIMARY KEY (position), "
        + ("CONSTRAINT uq_outbox_id UNIQUE (id), " if with_ids else "")
        + "CONSTRAINT uq_outbox_run_id_sequence UNIQUE (run_id, sequence))"
    )
    if with_ids:
        op.execute(
            f"INSERT INTO outbox_0017 (id, {_KEPT}) "
            f"SELECT run_id || ':' || sequence, {_KEPT} FROM outbox"
        )
    else:
        op.execute(f"INSERT INTO outbox_0017 ({_KEPT}) SELECT {_KEPT} FROM outbox")
    op.execute("DROP TABLE outbox")
    op.execute("ALTER TABLE outbox_0017 RENAME TO outbox")
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["position"],
        sqlite_where=sa.text(_UNPUBLISHED),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_outbox(with_ids=False)
    else:
        op.drop_column("outbox", "id")  # its unique constraint goes with it


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_outbox(with_ids=True)
        return
    op.add_column("outbox", sa.Column("id", sa.String(length=64), nullable=True))
    op.execute("UPDATE outbox SET id = run_id || ':' || sequence")
    op.alter_column("outbox", "id", nullable=False)
    op.create_unique_constraint("uq_outbox_id", "outbox", ["id"])
