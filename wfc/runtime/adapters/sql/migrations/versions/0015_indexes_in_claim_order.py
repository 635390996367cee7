"""Indexes in the order claims and dequeues take rows, and partial where rows leave them.

A claim takes the best PENDING run (highest priority, then oldest, then by id) and a
dequeue the best PENDING job (highest priority, then first queued). Their indexes were
ascending on priority with nothing after the time, so SQLite sorted every run (or job) of
the top priority to return one: a claim in a burst of 200 created runs read and sorted
200 rows. In the order they are taken, the best is the first entry.

Indexes that only some rows need leave the others out, so a run's or a stage's
transactions write fewer index pages: the retention index holds finished runs only, the children index child runs only, and the pollers'
indexes SUSPENDED stages and items only. Runs of one status, newest first (`wfc runs
list --status`), which the old status index left to a sort of every run of that status,
have an index of their own.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _create_partial(name: str, table: str, columns: list[str | sa.TextClause], where: str) -> None:
    """An index of the rows that meet `where` only, on both databases."""
    op.create_index(
        name, table, columns, postgresql_where=sa.text(where), sqlite_where=sa.text(where)
    )


def upgrade() -> None:
    op.drop_index("ix_runs_status_priority_created_at", table_name="runs")
    op.create_index(
        "ix_runs_status_claim_order",
        "runs",
        ["status", sa.text("priority DESC"), "created_at", "id"],
    )
    op.create_index("ix_runs_status_created_at_id", "runs", ["status", "created_at", "id"])
    op.drop_index("ix_runs_status_completed_at", table_name="runs")
    _create_partial(
        "ix_runs_status_completed_at",
        "runs",
        ["status", "completed_at"],
        "completed_at IS NOT NULL",
    )
    op.drop_index("ix_runs_parent_run_id", table_name="runs")
    _create_partial("ix_runs_parent_run_id", "runs", ["parent_run_id"], "parent_run_id IS NOT NULL")
    op.drop_index("ix_jobs_dequeue", table_name="jobs")
    _create_partial(
        "ix_jobs_dequeue", "jobs", [sa.text("priority DESC"), "position"], "status = 'PENDING'"
    )
    for table in ("stages", "items"):
        op.drop_index(f"ix_{table}_status_next_poll_at", table_name=table)
        _create_partial(
            f"ix_{table}_suspended", table, ["next_poll_at", "id"], "status = 'SUSPENDED'"
        )


def downgrade() -> None:
    for table in ("stages", "items"):
        op.drop_index(f"ix_{table}_suspended", table_name=table)
        op.create_index(f"ix_{table}_status_next_poll_at", table, ["status", "next_poll_at"])
    op.drop_index("ix_jobs_dequeue", table_name="jobs")
    _create_partial("ix_jobs_dequeue", "jobs", ["priority", "position"], "status = 'PENDING'")
    op.drop_index("ix_runs_parent_run_id", table_name="runs")
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"])
    op.drop_index("ix_runs_status_completed_at", table_name="runs")
    op.create_index("ix_runs_status_completed_at", "runs", ["status", "completed_at"])
    op.drop_index("ix_runs_status_created_at_id", table_name="runs")
    op.drop_index("ix_runs_status_claim_order", table_name="runs")
    op.create_index(
        "ix_runs_status_priority_created_at", "runs", ["status", "priority", "created_at"]
    )
