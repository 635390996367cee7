"""Fill a wfc database with many finished runs, fast: one real run, then bulk SQL copies.

`prefill(url, held)` runs one seq3 run to its end in this process (so every table
has the rows a finished run leaves: the run, its stages, jobs and outbox events),
then copies it `held` − 1 times with one `INSERT … SELECT` per table
over a recursive counter (the same SQL on SQLite and PostgreSQL), each copy with
ids of its own and its events marked published (a worker's outbox flush must not
find 100,000 runs' events to deliver).
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import workflows

from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.adapters.sql.schema import jobs, outbox, runs, stages
from wfc.runtime.commands import RunClaimPending, RunCreate
from wfc.runtime.hosts import make_kernel, process_job
from wfc.runtime.records import Status

BATCH = 20_000  # copies per statement: one transaction of that many runs

# The columns each copy changes: ids made unique by the copy's number `n.i`.
_NEW = "CAST(n.i AS TEXT) || '-' || "
CHANGED = {
    "runs": {"id": _NEW + "id"},
    "stages": {"id": _NEW + "id", "run_id": _NEW + "run_id"},
    "jobs": {"id": _NEW + "id", "run_id": _NEW + "run_id"},
    "outbox": {"id": _NEW + "id", "run_id": _NEW + "run_id", "published_at": "occurred_at"},
}


def _copy(table: str, columns: list[str], where: str, start: int, stop: int) -> str:
    changed = CHANGED[table]
    values = ", ".join(changed.get(name, f"t.{name}") for name in columns)
    quoted = ", ".join(f'"{name}"' for name in columns)
    return (
        f"WITH RECURSIVE n(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i < {stop})"
        f" INSERT INTO {table} ({quoted}) SELECT {values} FROM {table} t, n WHERE {where}"
    )


def _columns(table: str) -> list[str]:
    listed = {"runs": runs, "stages": stages, "jobs": jobs, "outbox": outbox}
    # Autoincrementing positions are left to the database.
    return [c.name for c in listed[table].c if c.name != "position"]


async def prefill(url: str, held: int) -> None:
    """Make `held` finished seq3 runs in the database at `url` (migrated already)."""
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())
    try:
        created = await kernel.dispatch(
            RunCreate(idempotency_key="prefill", workflow_id="seq3", input={"n": 0})
        )
        run_id = created.workflow_run_id
        await kernel.dispatch(RunClaimPending(worker_id="prefill"))
        while leased := await storage.jobs.dequeue(1):
            await process_job(kernel, leased[0])
        run = await storage.persistence.get_run(run_id)
        assert run is not None and run.status is Status.COMPLETED
        one = {
            "runs": f"t.id = '{run_id}'",
            "stages": f"t.run_id = '{run_id}'",
            "jobs": f"t.run_id = '{run_id}'",
            "outbox": f"t.run_id = '{run_id}'",
        }
        for start in range(1, held, BATCH):
            stop = min(start + BATCH, held) - 1
            async with storage.engine.begin() as conn:
                for table, where in one.items():
                    await conn.execute(text(_copy(table, _columns(table), where, start, stop)))
        if storage.engine.dialect.name == "postgresql":
            # The planner's statistics, as autovacuum would gather them. SQLite is left
            # without any, as wfc leaves it: with `sqlite_stat1` telling it a status matches
            # half the runs, its planner scans every run for the maintenance tick's few
            # RUNNING ones (adoption, stuck runs) instead of using the status index.
            async with storage.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
    finally:
        await storage.close()
