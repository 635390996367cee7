"""In-process benchmark: runs/s and CPU per run with the worker in the same process.

Run: `.venv/bin/python benchmarks/in_process.py [--db URL]` (default: a fresh
SQLite file). Reported, never asserted.

What `wfc run` and `run_and_wait` do when no worker serves the database: a
`WorkerHost` in the calling process, on the same engine, so the runs it creates
are handed to it without a poll and its writers share one process. RUNS runs
of each shape are created at once and served by one host of 8 slots; runs/s =
RUNS / (last completion − first creation) from the database's timestamps, and
CPU per run is this process's (`time.process_time`), creation included. A
first burst warms connections and statements; the second one is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from shapes import workflows  # noqa: E402

from wfc.runtime.adapters.sql import PoolOptions, open_storage  # noqa: E402
from wfc.runtime.commands import RunCreate  # noqa: E402
from wfc.runtime.hosts import WorkerHost, make_kernel  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402
from wfc.runtime.records import TERMINAL, Status  # noqa: E402


async def measure(url: str, shape: str, runs: int) -> dict[str, Any]:
    storage = open_storage(url, worker_id="bench", pool=PoolOptions.for_slots(8))
    await storage.prepare()
    kernel = make_kernel(storage, workflows())
    host = WorkerHost(
        kernel, worker_id="bench", concurrency=8, job_poll_interval=timedelta(milliseconds=200)
    )
    serving = asyncio.create_task(host.serve())
    try:
        result: dict[str, Any] = {}
        for burst in ("first", "second"):
            cpu = time.process_time()
            ids = [
                (
                    await kernel.dispatch(
                        RunCreate(
                            idempotency_key=f"{burst}-{shape}-{n}",
                            workflow_id=shape,
                            input={"n": 0},
                        )
                    )
                ).workflow_run_id
                for n in range(runs)
            ]
            while True:
                done = [await storage.persistence.get_run(i) for i in ids[-1:]]
                if all(r is not None and r.status in TERMINAL for r in done):
                    finished = [await storage.persistence.get_run(i) for i in ids]
                    if all(r is not None and r.status in TERMINAL for r in finished):
                        break
                await asyncio.sleep(0.02)
            spent = time.process_time() - cpu
            assert all(r is not None and r.status is Status.COMPLETED for r in finished)
            span = max(r.completed_at for r in finished if r and r.completed_at) - min(
                r.created_at for r in finished if r
            )
            result[burst] = {
                "runs_per_s": runs / span.total_seconds(),
                "cpu_ms_per_run": spent * 1000 / runs,
            }
        return {"shape": shape} | result["second"] | {"first_burst": result["first"]}
    finally:
        await host.stop()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--runs", type=int, default=200, help="runs per burst")
    args = parser.parse_args()
    print("| shape | runs/s | CPU per run (this process) | first burst runs/s |")
    print("|---|---|---|---|")
    for shape in ("seq3", "fan"):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'in-process.db'}"
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                row = runner.run(measure(url, shape, args.runs))
        print(
            f"| {shape} | {row['runs_per_s']:.0f} | {row['cpu_ms_per_run']:.1f} ms "
            f"| {row['first_burst']['runs_per_s']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
