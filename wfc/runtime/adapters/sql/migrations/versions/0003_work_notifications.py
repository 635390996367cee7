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

# This revision's own copy of the definitions (wakeups.py holds the current ones).
NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION wfc_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wfc_work', TG_TABLE_NAME);
  RETURN NULL;
END $$
"""
TRIGGERS = {
    "runs": (
        "CREATE TRIGGER wfc_runs_created AFTER INSERT ON runs "
        "FOR EACH STATEMENT EXECUTE FUNCTION wfc_notify_work()",
    ),
    "jobs": (
        "CREATE TRIGGER wfc_jobs_enqueued AFTER INSERT ON jobs "
        "FOR EACH STATEMENT EXECUTE FUNCTION wfc_notify_work()",
        "CREATE TRIGGER wfc_jobs_released AFTER UPDATE OF status ON jobs FOR EACH ROW "
        "WHEN (NEW.status = 'PENDING' AND OLD.status <> 'PENDING' AND NEW.run_at IS NULL) "
        "EXECUTE FUNCTION wfc_notify_work()",
    ),
}
DROP_STATEMENTS = (
    "DROP TRIGGER IF EXISTS wfc_runs_created ON runs",
    "DROP TRIGGER IF EXISTS wfc_jobs_enqueued ON jobs",
    "DROP TRIGGER IF EXISTS wfc_jobs_released ON jobs",
    "DROP FUNCTION IF EXISTS wfc_notify_work()",
)

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
