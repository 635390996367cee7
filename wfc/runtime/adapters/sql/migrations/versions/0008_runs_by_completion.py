"""Finished runs by completion time, for retention.

`wfc runs prune` deletes finished runs older than a cutoff in small batches,
oldest first; without this index each batch would scan every run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_status_completed_at", "runs", ["status", "completed_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_completed_at", table_name="runs")
