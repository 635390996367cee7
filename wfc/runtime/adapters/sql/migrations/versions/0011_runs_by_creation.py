"""Runs by creation time, for listing them newest first a page at a time.

`wfc ui` and `wfc runs list` show the newest runs and page on by keyset
(`created_at`, id); without this index every page sorts all runs, which is
felt at a hundred thousand of them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_created_at_id", table_name="runs")
