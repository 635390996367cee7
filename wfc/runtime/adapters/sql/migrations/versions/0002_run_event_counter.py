"""Per-run event counter: outbox appends take the next sequence with one UPDATE.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(
            sa.Column("last_sequence", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    # Existing runs continue from the events they already have.
    op.execute(
        "UPDATE runs SET last_sequence = "
        "COALESCE((SELECT MAX(sequence) FROM outbox WHERE outbox.run_id = runs.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("last_sequence")
