"""Mapped stages: an `items` table and the item counters of a stage row.

A stage with `map` runs once per item of a list. Each item that started has a
row of its own (status, attempt and version fence its writes as a stage row's
do, and its output is held in the row); the stage's row counts the items
queued and finished, so finishing one item writes its own row and the stage's,
never the other items'.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wfc.runtime.adapters.sql.schema import Json, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COUNTERS = ("items_total", "items_queued", "items_next", "items_done", "items_failed")


def upgrade() -> None:
    with op.batch_alter_table("stages") as batch_op:
        for name in COUNTERS:
            batch_op.add_column(
                sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text("0"))
            )
    op.create_table(
        "items",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.id", ondelete="CASCADE", name="fk_items_run_id_runs"),
            nullable=False,
        ),
        sa.Column("stage_id", sa.String(200), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("generation", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("started_at", UtcDateTime),
        sa.Column("completed_at", UtcDateTime),
        sa.Column("duration_ms", sa.BigInteger()),
        sa.Column("output", Json),
        sa.Column("error", sa.Text()),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("suspended_state", Json),
        sa.Column("next_poll_at", UtcDateTime),
        sa.Column("poll_interval_ms", sa.BigInteger()),
        sa.Column("max_wait_until", UtcDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_items"),
        sa.UniqueConstraint(
            "run_id", "stage_id", "item_index", name="uq_items_run_id_stage_id_item_index"
        ),
    )
    op.create_index("ix_items_status_next_poll_at", "items", ["status", "next_poll_at"])


def downgrade() -> None:
    op.drop_table("items")
    with op.batch_alter_table("stages") as batch_op:
        for name in COUNTERS:
            batch_op.drop_column(name)
