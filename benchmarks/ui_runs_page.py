"""The dashboard's runs query at scale: one page of 50 runs out of 100,000, first and deep.

Inserts `--runs` run rows into a fresh SQLite file (and PostgreSQL with `--postgres URL`,
a database this may fill), then times `list_runs` as the runs page calls it: the first
page, a page reached by keyset half-way through, the same with a status filter, an
id-prefix search, and the lookup of a run by a unique prefix of its id as every `wfc runs`
command does it (`resolve_run_id`). `--like-only` measures the prefix cases as they were
before the id range was added to the `LIKE` (for the before/after in docs/performance.md).
Reported, never asserted; the conformance suite checks the results.

Run: `.venv/bin/python benchmarks/ui_runs_page.py [--runs 100000] [--postgres URL]
[--like-only]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.adapters.sql import runs as sql_runs
from wfc.runtime.adapters.sql.schema import runs as runs_table
from wfc.runtime.records import Status
from wfc.runtime.run_ids import resolve_run_id

PAGE = 50


async def fill(url: str, count: int) -> None:
    storage = open_storage(url)
    await storage.create_schema()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    statuses = [Status.COMPLETED] * 8 + [Status.FAILED, Status.RUNNING]
    rows = [
        {
            "id": f"{i:08x}-run",
            "workflow_id": "wf" if i % 3 else "other",
            "workflow_name": "Wf",
            "plan_fingerprint": "sha256:x",
            "status": statuses[i % len(statuses)].value,
            "input": {"text": "hello"},
            "config": {},
            "priority": 0,
            "created_at": start + timedelta(seconds=i // 4),
            "updated_at": start,
        }
        for i in range(count)
    ]
    async with storage.engine.begin() as conn:
        for at in range(0, count, 5000):
            await conn.execute(runs_table.insert(), rows[at : at + 5000])
    await storage.close()


async def measure(url: str, repeats: int) -> dict[str, float]:
    storage = open_storage(url)
    db = storage.persistence
    middle = (await db.list_runs(limit=50_001))[-1]
    cases = {
        "first page": dict(),
        "deep page (keyset)": dict(before=(middle.created_at, middle.id)),
        "FAILED, deep page": dict(status=Status.FAILED, before=(middle.created_at, middle.id)),
        "id prefix": dict(id_prefix="0000ab"),
    }
    timings = {}
    for name, kwargs in cases.items():
        taken = []
        for _ in range(repeats):
            began = time.perf_counter()
            await db.list_runs(limit=PAGE + 1, **kwargs)  # type: ignore[arg-type]
            taken.append((time.perf_counter() - began) * 1000)
        timings[name] = statistics.median(taken)
    taken = []
    for _ in range(repeats):
        began = time.perf_counter()
        assert await resolve_run_id(db, "0000ab12") == "0000ab12-run"
        taken.append((time.perf_counter() - began) * 1000)
    timings["run id by prefix"] = statistics.median(taken)
    await storage.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--postgres", help="a PostgreSQL URL to fill and measure too")
    parser.add_argument("--like-only", action="store_true", help="the prefix as LIKE alone")
    args = parser.parse_args()
    if args.like_only:

        async def never(_conn: object) -> bool:
            return False

        sql_runs._ids_sort_bytewise = never  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as folder:
        urls = {"SQLite": f"sqlite+aiosqlite:///{Path(folder) / 'wfc.db'}"}
        if args.postgres:
            urls["PostgreSQL"] = args.postgres
        print(f"{args.runs} runs, page of {PAGE}; median of {args.repeats}, ms")
        for name, url in urls.items():
            asyncio.run(fill(url, args.runs))
            for case, ms in asyncio.run(measure(url, args.repeats)).items():
                print(f"  {name:10} {case:22} {ms:8.2f}")


if __name__ == "__main__":
    main()
