"""PostgreSQL notifies `wfc_run_ended` with a run's id when the run ends.

A process waiting for a run that another process drives (`wait_for_run` in an API
whose workers run elsewhere, `wfc runs watch`) LISTENs on it and looks at the run at
once, instead of at its next poll. One notification per run, when its status becomes
COMPLETED, FAILED or CANCELLED. SQLite has no notifications (waiters there watch the
file's `data_version`); this revision changes nothing there.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

# This revision's own copy of the definitions (run_ends.py holds the current ones).
NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION wfc_notify_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wfc_run_ended', NEW.id);
  RETURN NULL;
END $$
"""
TRIGGER = (
    "CREATE TRIGGER wfc_runs_ended AFTER UPDATE OF status ON runs FOR EACH ROW "
    "WHEN (NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED') "
    "AND OLD.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')) "
    "EXECUTE FUNCTION wfc_notify_run_ended()"
)
DROP_STATEMENTS = (
    "DROP TRIGGER IF EXISTS wfc_runs_ended ON runs",
    "DROP FUNCTION IF EXISTS wfc_notify_run_ended()",
)

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NOTIFY_FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in DROP_STATEMENTS:
        op.execute(statement)
