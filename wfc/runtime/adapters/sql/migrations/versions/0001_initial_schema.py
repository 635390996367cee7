"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import wfc.runtime.adapters.sql.schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ai_calls",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=500), nullable=False),
        sa.Column("call_type", sa.String(length=16), nullable=False),
        sa.Column("model_key", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column(
            "created_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("batch_id", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_ai_calls")),
        sa.UniqueConstraint("id", name=op.f("uq_ai_calls_id")),
    )
    with op.batch_alter_table("ai_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ai_calls_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ai_calls_topic"), ["topic"], unique=False)

    op.create_table(
        "blobs",
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_blobs")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("command_type", sa.String(length=64), nullable=False),
        sa.Column(
            "started_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("key", "command_type", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "jobs",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("stage_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "run_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column(
            "locked_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "started_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "completed_at",
            wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_jobs")),
        sa.UniqueConstraint("id", name=op.f("uq_jobs_id")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_dequeue",
            ["priority", "position"],
            unique=False,
            postgresql_where=sa.text("status = 'PENDING'"),
            sqlite_where=sa.text("status = 'PENDING'"),
        )
        batch_op.create_index(
            "ix_jobs_leased",
            ["locked_at"],
            unique=False,
            postgresql_where=sa.text("status = 'RUNNING'"),
            sqlite_where=sa.text("status = 'RUNNING'"),
        )
        batch_op.create_index(batch_op.f("ix_jobs_run_id"), ["run_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("causation_id", sa.String(length=200), nullable=False),
        sa.Column(
            "occurred_at",
            wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "published_at",
            wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "dlq_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
        sa.UniqueConstraint("run_id", "sequence", name=op.f("uq_outbox_run_id_sequence")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_unpublished",
            ["position"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL AND dlq_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL AND dlq_at IS NULL"),
        )

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("plan_fingerprint", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "input",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "started_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "completed_at",
            wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "error",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("total_cost", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_runs_status_priority_created_at"),
            ["status", "priority", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_runs_workflow_id_created_at"),
            ["workflow_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "logs",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("stage_record_id", sa.String(length=64), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_logs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_logs")),
        sa.UniqueConstraint("id", name=op.f("uq_logs_id")),
    )
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_logs_run_id_position"), ["run_id", "position"], unique=False
        )

    op.create_table(
        "stages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("stage_id", sa.String(length=200), nullable=False),
        sa.Column("stage_name", sa.String(length=200), nullable=False),
        sa.Column("stage_number", sa.Integer(), nullable=False),
        sa.Column("execution_group", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "started_at", wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "completed_at",
            wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("output_ref", sa.Text(), nullable=True),
        sa.Column(
            "suspended_state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "next_poll_at",
            wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("poll_interval_ms", sa.BigInteger(), nullable=True),
        sa.Column(
            "max_wait_until",
            wfc.runtime.adapters.sql.schema.UtcDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_stages_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
        sa.UniqueConstraint("run_id", "stage_id", name=op.f("uq_stages_run_id_stage_id")),
    )
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stages_status_next_poll_at"), ["status", "next_poll_at"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stages_status_next_poll_at"))

    op.drop_table("stages")
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logs_run_id_position"))

    op.drop_table("logs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_workflow_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_runs_status_priority_created_at"))

    op.drop_table("runs")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unpublished",
            postgresql_where=sa.text("published_at IS NULL AND dlq_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL AND dlq_at IS NULL"),
        )

    op.drop_table("outbox")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_run_id"))
        batch_op.drop_index(
            "ix_jobs_leased",
            postgresql_where=sa.text("status = 'RUNNING'"),
            sqlite_where=sa.text("status = 'RUNNING'"),
        )
        batch_op.drop_index(
            "ix_jobs_dequeue",
            postgresql_where=sa.text("status = 'PENDING'"),
            sqlite_where=sa.text("status = 'PENDING'"),
        )

    op.drop_table("jobs")
    op.drop_table("idempotency_keys")
    op.drop_table("blobs")
    with op.batch_alter_table("ai_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ai_calls_topic"))
        batch_op.drop_index(batch_op.f("ix_ai_calls_batch_id"))

    op.drop_table("ai_calls")
