"""Stages delivered as queue messages (`ServerlessHost.handle_job`) that hand each other
large outputs: what a delivery costs, and what its idempotency key stores.

Run: `.venv/bin/python benchmarks/delivered_large_outputs.py` (`--records N`, default
10,000: a 1.7 MB output; `--store sqlite|postgres`; `--database URL` for PostgreSQL, a
database `wfc db upgrade` migrated; `--runs N`). Reported, never asserted.

Each run is `large_outputs.chain(3)`: `make` returns `--records` records, `reorder` takes
them and returns them reordered, `count` counts them; two of its three stages store a
large output. The run is created, a maintenance tick claims it, and each job is leased
and handed to `handle_job` as the message a queue would carry (camelCase JSON): a
delivery that may repeat, so its `job.execute` runs under an idempotency key. Timed:
the `handle_job` calls alone, CPU (`process_time`) and wall, per run; and the bytes of
the results the run's keys store (`idempotency_keys.result`, as JSON text).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.large_outputs import chain
from wfc.runtime import JobMessage, RunCreate, ServerlessHost
from wfc.runtime.adapters.sql import SqlStorage, open_storage
from wfc.runtime.adapters.sql.schema import idempotency_keys
from wfc.runtime.hosts import make_kernel
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import Status
from wfc.runtime.registry import WorkflowMap

STAGES = 3


async def one_run(
    kernel: Kernel, host: ServerlessHost, seed: dict[str, int]
) -> tuple[float, float]:
    """CPU and wall seconds of the run's `handle_job` calls."""
    created = await kernel.dispatch(
        RunCreate(idempotency_key=kernel.deps.ids.new_id(), workflow_id="large", input=seed)
    )
    cpu = wall = 0.0
    while True:
        await host.run_maintenance_tick()
        leased = await kernel.deps.jobs.dequeue(1, plans=kernel.deps.registry.plans())
        if not leased:
            run = await kernel.deps.persistence.get_run(created.workflow_run_id)
            assert run is not None and run.status is Status.COMPLETED, run
            return cpu, wall
        message = JobMessage.of(leased[0]).model_dump_json(by_alias=True)
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        outcome = await host.handle_job(message)
        cpu += time.process_time() - started_cpu
        wall += time.perf_counter() - started_wall
        assert outcome.outcome == "completed", outcome


async def stored_key_bytes(storage: SqlStorage) -> int:
    async with storage.engine.connect() as conn:
        results = (await conn.execute(select(idempotency_keys.c.result))).scalars().all()
    return sum(len(json.dumps(result)) for result in results if result is not None)


async def measure(storage: SqlStorage, records: int, runs: int) -> dict[str, float]:
    kernel = make_kernel(storage, WorkflowMap([chain(STAGES)]))
    host = ServerlessHost(kernel)
    seed = {"records": records}
    await one_run(kernel, host, seed)  # warm
    keys_before = await stored_key_bytes(storage)
    cpus, walls = [], []
    for _ in range(runs):
        cpu, wall = await one_run(kernel, host, seed)
        cpus.append(cpu)
        walls.append(wall)
    keys = (await stored_key_bytes(storage) - keys_before) / runs
    return {
        "cpu": statistics.median(cpus) * 1000,
        "wall": statistics.median(walls) * 1000,
        "keys": keys,
    }


async def on_store(store: str, database: str | None, records: int, runs: int) -> dict[str, float]:
    if store == "postgres":
        url = database or os.environ.get("WFC_BENCH_DATABASE_URL")
        if not url:
            raise SystemExit("--store postgres needs --database URL (or WFC_BENCH_DATABASE_URL)")
        storage = open_storage(url)
        await storage.prepare()
        try:
            return await measure(storage, records, runs)
        finally:
            await storage.close()
    with tempfile.TemporaryDirectory() as tmp:
        storage = open_storage(f"sqlite+aiosqlite:///{Path(tmp) / 'delivered.db'}")
        await storage.prepare()
        try:
            return await measure(storage, records, runs)
        finally:
            await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    found = asyncio.run(on_store(args.store, args.database, args.records, args.runs))
    print(f"{args.store}, {STAGES} stages, {args.records:,} records, median of {args.runs} runs")
    print("| handle_job CPU a run | wall a run | stored in the run's keys |")
    print("|---|---|---|")
    print(f"| {found['cpu']:.1f} ms | {found['wall']:.1f} ms | {found['keys'] / 1e3:,.1f} kB |")


if __name__ == "__main__":
    main()
