"""Signals sent to runs.

One row per signal (`run.signal`): the run, the signal's name, its idempotency
key (unique per run: a second send under it is the same signal), its payload,
and which stage row took it and when. Signals of one name are taken in the
order they were sent (`sequence`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-13
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wfc.runtime.adapters.sql.schema import Json, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("sequence", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("payload", Json),
        sa.Column("sent_at", UtcDateTime, nullable=False),
        sa.Column("consumed_at", UtcDateTime),
        sa.Column("consumed_by", sa.String(64)),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_signals_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sequence", name="pk_signals"),
        sa.UniqueConstraint("id", name="uq_signals_id"),
        sa.UniqueConstraint("run_id", "idempotency_key", name="uq_signals_run_id_idempotency_key"),
    )
    op.create_index("ix_signals_run_id_name_sequence", "signals", ["run_id", "name", "sequence"])


def downgrade() -> None:
    op.drop_index("ix_signals_run_id_name_sequence", table_name="signals")
    op.drop_table("signals")
