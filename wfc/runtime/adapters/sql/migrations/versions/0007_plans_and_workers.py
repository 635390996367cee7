"""Plans and workers: which plans exist, and which live worker serves which.

A run names its plan by fingerprint; the plan itself is now kept too, so it
can be shown after no worker serves it any more. Each worker announces the
plans it serves every maintenance tick, so `wfc runs show` can say that a run
waits for a worker that serves its plan, and `wfc workers` who is alive.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wfc.runtime.adapters.sql.schema import Json, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("fingerprint", sa.String(80), nullable=False),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("workflow_name", sa.String(200), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_plans"),
    )
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("plans", Json, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("seen_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name="pk_workers"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("plans")
