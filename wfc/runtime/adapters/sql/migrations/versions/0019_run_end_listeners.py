"""PostgreSQL notifies `wfc_run_ended` only while some connection listens for it.

Revision 0018's NOTIFY cost every run-ending commit about 470 µs (a notifying commit
takes a lock all notifying commits of the database share), though most fleets have no
process waiting. A listening connection now registers itself in `run_end_listeners`
(its backend's pid, since when), and the trigger notifies only when that table has a
row. SQLite has no notifications (waiters there watch the file's `data_version`); this
revision changes nothing there.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op

# This revision's own copy of the definitions (run_ends.py holds the current ones).
LISTENERS_TABLE = """
CREATE TABLE run_end_listeners (
  pid integer PRIMARY KEY,
  listening_since timestamptz NOT NULL DEFAULT now()
)
"""
GATED_FUNCTION = """
CREATE OR REPLACE FUNCTION wfc_notify_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM run_end_listeners) THEN
    PERFORM pg_notify('wfc_run_ended', NEW.id);
  END IF;
  RETURN NULL;
END $$
"""
# 0018's function: notifies every end.
UNGATED_FUNCTION = """
CREATE OR REPLACE FUNCTION wfc_notify_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wfc_run_ended', NEW.id);
  RETURN NULL;
END $$
"""

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(LISTENERS_TABLE)
    op.execute(GATED_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(UNGATED_FUNCTION)
    op.execute("DROP TABLE IF EXISTS run_end_listeners")
