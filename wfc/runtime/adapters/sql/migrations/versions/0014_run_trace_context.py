"""Trace context: the W3C traceparent a run's spans join, whichever worker runs its stages.

With tracing on (`wfc worker --otel`), a run is given a trace context when it is
created (the caller's, when the caller has an active span): each stage attempt's
span, made by any worker process, is a child of it, so one run is one trace. The
column is NULL for runs made with tracing off (and for every run made before this
revision); their spans get a trace id derived from the run id instead.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("trace_context", sa.String(64)))


def downgrade() -> None:
    op.drop_column("runs", "trace_context")
