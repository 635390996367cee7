"""Child runs: the run and the stage that started a run, for runs started by a stage.

A stage that runs another workflow (`wfc:child`) creates a child run; the child keeps
its parent's run id and stage id, so the parent's stage is told when the child ends,
cancelling the parent cancels its children, and `wfc runs show` links the two. The
columns are NULL for every other run (and for every run made before this revision).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("parent_run_id", sa.String(64)))
    op.add_column("runs", sa.Column("parent_stage_id", sa.String(200)))
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_parent_run_id", table_name="runs")
    op.drop_column("runs", "parent_stage_id")
    op.drop_column("runs", "parent_run_id")
