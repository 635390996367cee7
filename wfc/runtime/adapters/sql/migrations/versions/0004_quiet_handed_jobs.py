"""Jobs queued already leased to the worker that queued them wake nobody.

A worker that finishes a stage queues the next group leased to itself when
it has free slots (`wfc.runtime.handoff`). The insert trigger notified every
listening worker once per INSERT statement, so all of them raced to dequeue a
job that was never theirs to take; it now fires per row, only for PENDING
rows (PostgreSQL folds identical notifications of one transaction into one).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DROP = "DROP TRIGGER IF EXISTS wfc_jobs_enqueued ON jobs"
PER_PENDING_ROW = (
    "CREATE TRIGGER wfc_jobs_enqueued AFTER INSERT ON jobs FOR EACH ROW "
    "WHEN (NEW.status = 'PENDING') EXECUTE FUNCTION wfc_notify_work()"
)
PER_STATEMENT = (
    "CREATE TRIGGER wfc_jobs_enqueued AFTER INSERT ON jobs "
    "FOR EACH STATEMENT EXECUTE FUNCTION wfc_notify_work()"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(DROP)
    op.execute(PER_PENDING_ROW)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(DROP)
    op.execute(PER_STATEMENT)
