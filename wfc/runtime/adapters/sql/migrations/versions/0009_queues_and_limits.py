"""Named queues and fleet-wide limits on jobs.

A job now names its queue (only workers serving that queue lease it) and the
limits it is under: a concurrency key with its bound (executions RUNNING at
once under the key, counted from `jobs` itself, so a lost worker can never
leak a slot) and a rate key with its bound and window (starts recorded in
`rate_starts`). `limit_locks` holds one row per key that a leasing
transaction locks, so two workers checking the same key take turns, and the
bound an operator set for the key in place of the plan's (`wfc limits set`).
Workers announce the queues they serve beside their plans.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from wfc.runtime.adapters.sql.schema import Json, UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("queue", sa.String(100), nullable=False, server_default="default")
        )
        batch.add_column(sa.Column("concurrency_key", sa.String(400)))
        batch.add_column(sa.Column("concurrency_max", sa.Integer()))
        batch.add_column(sa.Column("rate_key", sa.String(400)))
        batch.add_column(sa.Column("rate_max", sa.Integer()))
        batch.add_column(sa.Column("rate_window_ms", sa.Integer()))
    op.create_index(
        "ix_jobs_running_by_concurrency_key",
        "jobs",
        ["concurrency_key"],
        postgresql_where=sa.text("status = 'RUNNING' AND concurrency_key IS NOT NULL"),
        sqlite_where=sa.text("status = 'RUNNING' AND concurrency_key IS NOT NULL"),
    )
    op.create_table(
        "limit_locks",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("max_override", sa.Integer()),
        sa.PrimaryKeyConstraint("key", name="pk_limit_locks"),
    )
    op.create_table(
        "rate_starts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rate_starts"),
    )
    op.create_index("ix_rate_starts_key_started_at", "rate_starts", ["key", "started_at"])
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("queues", Json))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("queues")
    op.drop_index("ix_rate_starts_key_started_at", table_name="rate_starts")
    op.drop_table("rate_starts")
    op.drop_table("limit_locks")
    op.drop_index("ix_jobs_running_by_concurrency_key", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in (
            "rate_window_ms",
            "rate_max",
            "rate_key",
            "concurrency_max",
            "concurrency_key",
            "queue",
        ):
            batch.drop_column(column)
