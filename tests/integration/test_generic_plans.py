"""PostgreSQL: the queues' partial indexes serve a prepared statement's generic plan.

asyncpg prepares every statement, and after a few runs PostgreSQL may keep one generic
plan for all parameter values. A partial index (`WHERE status = 'PENDING'`) is usable
there only if the statement's own text says the status; with the status bound as a
parameter the generic plan scans the table. `plan_cache_mode = force_generic_plan`
makes PostgreSQL take that plan at once.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.dialects import postgresql

from tests.databases import postgres_database
from wfc.runtime.adapters.sql import runs as run_sql
from wfc.runtime.adapters.sql.jobs import _LEASE
from wfc.runtime.adapters.sql.schema import items, stages
from wfc.runtime.adapters.sql.suspended_rows import claim_suspended


async def generic_plan(statement: Any) -> str:
    """PostgreSQL's generic plan of `statement` as asyncpg would send it."""
    dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    sql = str(statement.compile(dialect=dialect))
    async with postgres_database() as url:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            await connection.execute(f"PREPARE hot AS {sql}")
            count = max(int(number) for number in re.findall(r"\$(\d+)", sql))
            nulls = ", ".join(["NULL"] * count)
            rows = await connection.fetch(f"EXPLAIN EXECUTE hot({nulls})")
        finally:
            await connection.close()
    return "\n".join(row[0] for row in rows)


async def test_a_dequeue_s_generic_plan_reads_the_pending_jobs_index() -> None:
    plan = await generic_plan(_LEASE)
    assert "ix_jobs_dequeue" in plan, plan


@pytest.mark.parametrize("table", [stages, items], ids=lambda table: table.name)
async def test_a_poller_s_generic_plan_reads_the_suspended_rows_index(table: Any) -> None:
    plan = await generic_plan(claim_suspended(table))
    assert f"ix_{table.name}_suspended" in plan, plan


@pytest.mark.parametrize("plans", [None, 1, 3])
async def test_a_claim_s_generic_plan_reads_the_pending_runs_index(plans: int | None) -> None:
    """The claim index holds PENDING runs only (0016): a claim whose status were bound
    would scan another index and sort."""
    plan = await generic_plan(run_sql._claim(plans))
    assert "ix_runs_status_claim_order" in plan, plan
    assert "Sort" not in plan, plan
