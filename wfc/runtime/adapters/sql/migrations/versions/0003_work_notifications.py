"""PostgreSQL notifies `wfc_work` when a run is created or a job becomes due now.

Idle workers LISTEN on it, so a stage finished on one machine starts the next
group on another without waiting for a poll. SQLite has no notifications; this
revision changes nothing there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from wfc.runtime.adapters.sql.wakeups import DROP_STATEMENTS, NOTIFY_FUNCTION, TRIGGERS

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NOTIFY_FUNCTION)
    for statements in TRIGGERS.values():
        for statement in statements:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in DROP_STATEMENTS:
        op.execute(statement)
