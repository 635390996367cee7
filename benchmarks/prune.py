"""Retention at scale: pruning 100,000 finished runs while other runs go on.

Run: `.venv/bin/python benchmarks/prune.py [--runs 100000]` (PostgreSQL as for
`runtime.py`, a fresh database created and dropped; `--sqlite` for a file).
Reported, never asserted, except that nothing but the old finished runs is
deleted.

The database is filled directly (bulk INSERTs, as years of traffic would have
left it): RUNS finished runs, each with two stage rows, a log line, three
outbox events, two jobs and two blobs, finished 40 days ago, plus 100 runs
finished yesterday and 100 still RUNNING with the same rows. Then
`wfc runs prune --older-than 30d`'s function runs, and the script prints how
long it took, runs/s, the longest single batch (how long any lock was held),
and checks that the recent and running runs, with their rows and blobs, are
all still there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from runtime import _migrate, postgres  # noqa: E402

from wfc.runtime.adapters.memory import SystemClock  # noqa: E402
from wfc.runtime.adapters.sql import SqlStorage, open_storage  # noqa: E402
from wfc.runtime.adapters.sql.schema import blobs, jobs, logs, outbox, runs, stages  # noqa: E402
from wfc.runtime.hosts import make_kernel  # noqa: E402
from wfc.runtime.kernel import retention  # noqa: E402
from wfc.runtime.registry import WorkflowMap  # noqa: E402

CHUNK = 2_000


def _rows(
    run_id: str, status: str, finished: datetime | None, now: datetime
) -> dict[str, list[dict[str, Any]]]:
    created = (finished or now) - timedelta(minutes=1)
    run = {
        "id": run_id,
        "workflow_id": "wf",
        "workflow_name": "Wf",
        "plan_fingerprint": "sha256:bench",
        "status": status,
        "input": {"text": "x" * 200},
        "config": {},
        "priority": 0,
        "created_at": created,
        "updated_at": finished or created,
        "started_at": created,
        "completed_at": finished,
        "metadata": None,
        "last_sequence": 3,
    }
    stage_rows = [
        {
            "id": f"{run_id}/{stage}",
            "run_id": run_id,
            "stage_id": stage,
            "stage_name": stage,
            "stage_number": number,
            "execution_group": number,
            "status": "COMPLETED",
            "config": {},
            "created_at": created,
            "updated_at": created,
            "metrics": {},
        }
        for number, stage in enumerate(("a", "b"), start=1)
    ]
    log = {
        "id": f"{run_id}/log",
        "run_id": run_id,
        "stage_record_id": None,
        "level": "INFO",
        "message": "done",
        "fields": {},
        "created_at": created,
    }
    events = [
        {
            "id": f"{run_id}/e{n}",
            "run_id": run_id,
            "sequence": n,
            "event_type": "stage:completed",
            "payload": {"n": n},
            "causation_id": "bench",
            "occurred_at": created,
            "published_at": created,
        }
        for n in (1, 2, 3)
    ]
    job_rows = [
        {
            "id": f"{run_id}/j{stage}",
            "run_id": run_id,
            "workflow_id": "wf",
            "stage_id": stage,
            "status": "COMPLETED",
            "priority": 0,
            "attempt": 1,
            "max_attempts": 3,
            "payload": {},
            "created_at": created,
            "updated_at": created,
            "plan_fingerprint": "sha256:bench",
        }
        for stage in ("a", "b")
    ]
    blob_rows = [
        {"key": f"runs/wf/{run_id}/{stage}/output.json", "data": b'{"n": 1}'}
        for stage in ("a", "b")
    ]
    return {
        "runs": [run],
        "stages": stage_rows,
        "logs": [log],
        "outbox": events,
        "jobs": job_rows,
        "blobs": blob_rows,
    }


_TABLES = {
    "runs": runs,
    "stages": stages,
    "logs": logs,
    "outbox": outbox,
    "jobs": jobs,
    "blobs": blobs,
}


async def _fill(storage: SqlStorage, count: int) -> None:
    """`count` runs finished 40 days ago, 100 finished yesterday, 100 RUNNING."""
    now = SystemClock().now()
    kinds = [("old", count, "COMPLETED", now - timedelta(days=40))]
    kinds += [("recent", 100, "COMPLETED", now - timedelta(days=1)), ("live", 100, "RUNNING", None)]
    for prefix, how_many, status, finished in kinds:
        for start in range(0, how_many, CHUNK):
            batch: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
            for n in range(start, min(start + CHUNK, how_many)):
                for name, rows in _rows(f"{prefix}-{n}", status, finished, now).items():
                    batch[name].extend(rows)
            async with storage.engine.begin() as conn:
                for name, table in _TABLES.items():
                    await conn.execute(table.insert(), batch[name])


async def _count(storage: SqlStorage, prefix: str) -> dict[str, int]:
    from sqlalchemy import func, select

    counts = {}
    async with storage.engine.connect() as conn:
        for name, table in _TABLES.items():
            column = (
                table.c.key if name == "blobs" else table.c.run_id if name != "runs" else table.c.id
            )
            pattern = f"runs/wf/{prefix}-%" if name == "blobs" else f"{prefix}-%"
            statement = select(func.count()).where(column.like(pattern))
            counts[name] = int((await conn.execute(statement)).scalar_one())
    return counts


async def _bench(url: str, count: int, batch: int) -> dict[str, Any]:
    storage = open_storage(url)
    try:
        if url.startswith("sqlite"):
            await storage.create_schema()
        started = time.perf_counter()
        await _fill(storage, count)
        filled_s = time.perf_counter() - started
        kept_before = {p: await _count(storage, p) for p in ("recent", "live")}
        kernel = make_kernel(storage, WorkflowMap())
        longest = 0.0
        total = 0
        began = time.perf_counter()
        while True:  # one batch at a time, to time the longest (how long locks are held)
            t0 = time.perf_counter()
            pruned = await retention.prune_finished_runs(
                kernel.deps, timedelta(days=30), batch=batch, max_batches=1
            )
            longest = max(longest, time.perf_counter() - t0)
            total += pruned.runs
            if not pruned.more:
                break
        took = time.perf_counter() - began
        kept_after = {p: await _count(storage, p) for p in ("recent", "live")}
        left = await _count(storage, "old")
    finally:
        await storage.close()
    assert kept_after == kept_before, (kept_before, kept_after)
    assert all(n == 0 for n in left.values()), left
    return {
        "finished_runs": count,
        "pruned": total,
        "batch": batch,
        "fill_s": round(filled_s, 1),
        "prune_s": round(took, 1),
        "runs_per_s": round(total / took) if took else None,
        "longest_batch_ms": round(longest * 1000, 1),
        "untouched": kept_after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=retention.DEFAULT_BATCH)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    args = parser.parse_args()
    if args.sqlite:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite+aiosqlite:///{directory}/prune.db"
            result = asyncio.run(_bench(url, args.runs, args.batch))
    else:
        with postgres("wfc_prune_bench") as url:
            asyncio.run(_migrate(url))
            result = asyncio.run(_bench(url, args.runs, args.batch))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
