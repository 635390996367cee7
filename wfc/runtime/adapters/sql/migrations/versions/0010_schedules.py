"""Cron schedules of workflows.

One row per (workflow, name), declared in a plan a worker serves (`source`
"plan") or added with `wfc schedules add` ("cli"). `next_due_at` is the tick
the schedule waits for: a worker fires it with a conditional update on that
column, so each tick is handled by one worker however many share the
database, and the tick's run is created under an idempotency key of its own.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wfc.runtime.adapters.sql.schema import Json, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("input", Json, nullable=False),
        sa.Column("catch_up", sa.String(16), nullable=False),
        sa.Column("overlap", sa.String(16), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("next_due_at", UtcDateTime, nullable=False),
        sa.Column("last_tick_at", UtcDateTime),
        sa.Column("last_run_id", sa.String(64)),
        sa.Column("last_outcome", sa.Text()),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("workflow_id", "name", name="uq_schedules_workflow_id_name"),
    )
    op.create_index("ix_schedules_next_due_at", "schedules", ["next_due_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_next_due_at", table_name="schedules")
    op.drop_table("schedules")
