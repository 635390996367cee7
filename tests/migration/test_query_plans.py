"""The hot reads' plans on a migrated SQLite file: the best row is an index's first entry,
and the partial indexes still serve the queries that need them.

A claim and a dequeue take one row, the best by priority then age. With an index that is
not in that order, SQLite sorts every candidate first ("USE TEMP B-TREE"), so a claim in
a burst of created runs costs as much as the burst is long. The partial indexes leave out
rows nothing looks for there (runs not finished, runs with no parent, stages not
SUSPENDED); these tests also hold that the queries that look are still served by them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from wfc.runtime.adapters.sql import runs as run_sql
from wfc.runtime.adapters.sql.engine import create_engine
from wfc.runtime.adapters.sql.jobs import _LEASE
from wfc.runtime.adapters.sql.migrate import upgrade
from wfc.runtime.adapters.sql.schema import items, runs, stages
from wfc.runtime.adapters.sql.suspended_rows import claim_suspended
from wfc.runtime.records import Status


@pytest.fixture
async def migrated(tmp_path: Path) -> AsyncIterator[sqlite3.Connection]:
    """A SQLite file at the head revision, as `wfc` migrates it, opened with the stdlib."""
    path = tmp_path / "wfc.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    await engine.dispose()
    connection = sqlite3.connect(path)
    yield connection
    connection.close()


def plan_of(connection: sqlite3.Connection, statement: Any) -> list[str]:
    """SQLite's plan for `statement` with its constants bound (the partial indexes' WHERE
    is matched against them) and every other parameter NULL."""
    compiled = statement.compile(
        dialect=sqlite.dialect(), compile_kwargs={"render_postcompile": True}
    )
    values = [compiled.params.get(name) for name in compiled.positiontup or ()]
    return [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {compiled}", values)]


def test_a_claim_reads_the_best_pending_run_without_sorting_them(
    migrated: sqlite3.Connection,
) -> None:
    for plans in (None, 1, 3):
        plan = plan_of(migrated, run_sql._claim(plans))
        assert any("ix_runs_status_claim_order" in step for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan


def test_a_dequeue_reads_the_best_pending_job_without_sorting_them(
    migrated: sqlite3.Connection,
) -> None:
    plan = plan_of(migrated, _LEASE)
    assert any("ix_jobs_dequeue" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


@pytest.mark.parametrize("table", [stages, items], ids=lambda table: table.name)
def test_the_poller_reads_only_suspended_rows_due_first(
    migrated: sqlite3.Connection, table: Any
) -> None:
    plan = plan_of(migrated, claim_suspended(table))
    assert any(f"ix_{table.name}_suspended" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_a_page_of_one_status_reads_its_runs_newest_first_without_sorting_them(
    migrated: sqlite3.Connection,
) -> None:
    for status in (Status.COMPLETED, Status.RUNNING):
        page = (
            select(runs.c.id)
            .where(runs.c.status == status.value)
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(20)
        )
        plan = plan_of(migrated, page)
        assert any("ix_runs_status_created_at_id" in step for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan


def test_retention_and_children_still_use_their_partial_indexes(
    migrated: sqlite3.Connection,
) -> None:
    finished = select(runs.c.id).where(
        runs.c.status.in_([Status.COMPLETED.value, Status.FAILED.value]),
        runs.c.completed_at < "2026-01-01",
    )
    assert any("ix_runs_status_completed_at" in step for step in plan_of(migrated, finished))
    children = select(runs.c.id).where(runs.c.parent_run_id == "parent")
    assert any("ix_runs_parent_run_id" in step for step in plan_of(migrated, children))


def test_rows_the_hot_path_writes_stay_out_of_the_partial_indexes(
    migrated: sqlite3.Connection,
) -> None:
    """A run created, claimed and running, with a RUNNING stage, is in none of them: its
    transactions write no page of those indexes."""
    migrated.execute(
        "INSERT INTO runs (id, workflow_id, workflow_name, plan_fingerprint, status, input,"
        " config, priority, created_at, updated_at) VALUES"
        " ('r', 'w', 'w', 'p', 'RUNNING', '{}', '{}', 0, '2026-01-01', '2026-01-01')"
    )
    migrated.execute(
        "INSERT INTO stages (id, run_id, stage_id, stage_name, stage_number, execution_group,"
        " status, config, created_at, updated_at, metrics) VALUES"
        " ('s', 'r', 'a', 'a', 1, 1, 'RUNNING', '{}', '2026-01-01', '2026-01-01', '{}')"
    )

    def entries(index: str) -> int:
        # The index's own b-tree, whatever its WHERE (`dbstat`: SQLite's page statistics).
        try:
            row = migrated.execute(
                "SELECT coalesce(sum(ncell), 0) FROM dbstat WHERE name = ? AND pagetype = 'leaf'",
                (index,),
            ).fetchone()
        except sqlite3.OperationalError:
            pytest.skip("this SQLite has no dbstat")
        return int(row[0])

    assert entries("ix_runs_status_created_at_id") == 1  # (counted the same way)
    assert entries("ix_runs_status_claim_order") == 0  # PENDING runs only
    assert entries("ix_runs_status_completed_at") == 0
    assert entries("ix_runs_parent_run_id") == 0
    assert entries("ix_stages_suspended") == 0
