"""Fewer pages written per run: the claim index holds PENDING runs only, and SQLite's
blobs are keyed by their key alone.

Every SQLite COMMIT writes each page its transaction changed to the WAL (about 10 µs
a page), and a seq3 run wrote 91 pages in its five transactions. Two of the
b-trees behind them did work no read needed:

- `ix_runs_status_claim_order` held every run, so a run's finish moved its entry from
  RUNNING to COMPLETED (4.3 pages a run). Claims read its PENDING entries only: partial
  on PENDING, a run leaves it at its claim (0.6 pages a run).
- `blobs` was a rowid table plus the index of its text key, and each stage output's
  upsert wrote a page of both (7.5 pages a run for three outputs); WITHOUT ROWID it is
  one b-tree in key order (4.2). SQLite rebuilds a table to change this: the rows are
  copied into the new table. PostgreSQL has no rowids: there only the index changes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_CLAIM_ORDER: list[str | sa.TextClause] = ["status", sa.text("priority DESC"), "created_at", "id"]
_PENDING = "status = 'PENDING'"


def _rebuild_blobs(rowid: bool) -> None:
    """SQLite: `blobs` again, with its rows, as a rowid table or WITHOUT ROWID."""
    op.execute(
        'CREATE TABLE blobs_0016 ("key" VARCHAR(1000) NOT NULL, data BLOB NOT NULL, '
        'CONSTRAINT pk_blobs PRIMARY KEY ("key"))' + ("" if rowid else " WITHOUT ROWID")
    )
    op.execute('INSERT INTO blobs_0016 ("key", data) SELECT "key", data FROM blobs')
    op.execute("DROP TABLE blobs")
    op.execute("ALTER TABLE blobs_0016 RENAME TO blobs")


def upgrade() -> None:
    op.drop_index("ix_runs_status_claim_order", table_name="runs")
    op.create_index(
        "ix_runs_status_claim_order",
        "runs",
        _CLAIM_ORDER,
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_blobs(rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_blobs(rowid=True)
    op.drop_index("ix_runs_status_claim_order", table_name="runs")
    op.create_index("ix_runs_status_claim_order", "runs", _CLAIM_ORDER)
