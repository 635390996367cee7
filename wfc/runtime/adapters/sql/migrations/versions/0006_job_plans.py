"""Jobs know the plan of their run, so a worker dequeues only jobs of plans it serves.

Two services sharing one database, or an old and a new deploy of one service
side by side, each take only the work they can run: a job of a plan no worker
serves waits instead of failing on the first worker that dequeues it.
Existing jobs take their run's plan.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("plan_fingerprint", sa.String(80)))
    op.execute(
        "UPDATE jobs SET plan_fingerprint = "
        "(SELECT plan_fingerprint FROM runs WHERE runs.id = jobs.run_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("plan_fingerprint")
