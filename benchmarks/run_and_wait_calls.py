"""`run_and_wait` one call after another, as a script or a service calls it: wall and CPU per call.

Run: `.venv/bin/python benchmarks/run_and_wait_calls.py` (`--calls N`, `--shape fan`,
`--database URL` for PostgreSQL). Reported, never asserted.

Two ways a caller runs it, on a fresh SQLite file by default:
- own host: `run_and_wait(kernel, ...)` starts a worker for its run and stops it after
  (a script, `wfc run`);
- shared host: one `WorkerHost` started first and passed as `host=` to every call (a
  service creating a run per request).
Each call creates its run and returns once the run has ended, one call at a time, so
wall per call is the latency a caller sees. Five calls warm up first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import INPUT, workflows

from wfc.runtime import Status, WorkerHost, run_and_wait
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.hosts import make_kernel
from wfc.runtime.kernel import Kernel


async def calls(kernel: Kernel, shape: str, count: int, host: WorkerHost | None) -> float:
    """Seconds of wall time for `count` calls made one after the other."""
    started = time.perf_counter()
    for _ in range(count):
        run = await run_and_wait(kernel, shape, INPUT, host=host)
        assert run.status is Status.COMPLETED, "a benchmark run failed"
    return time.perf_counter() - started


async def measure(url: str, shape: str, count: int) -> dict[str, dict[str, float]]:
    storage = open_storage(url)
    await storage.prepare()
    kernel = make_kernel(storage, workflows())
    figures: dict[str, dict[str, float]] = {}
    try:
        for name in ("own host", "shared host"):
            host = None
            if name == "shared host":
                host = WorkerHost(kernel, worker_id="shared", concurrency=4)
                await host.start()
            await calls(kernel, shape, 5, host)
            cpu = time.process_time()
            wall = await calls(kernel, shape, count, host)
            cpu = time.process_time() - cpu
            figures[name] = {"wall_ms": wall * 1000 / count, "cpu_ms": cpu * 1000 / count}
            if host is not None:
                await host.stop()
    finally:
        await storage.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--shape", choices=("seq3", "fan"), default="seq3")
    parser.add_argument("--database", help="a database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{tmp}/calls.db"
        figures = asyncio.run(measure(url, args.shape, args.calls))
    print(f"| {args.shape}, {args.calls} calls | wall per call | CPU per call |")
    print("|---|---|---|")
    for name, figure in figures.items():
        print(f"| {name} | {figure['wall_ms']:.2f} ms | {figure['cpu_ms']:.2f} ms |")


if __name__ == "__main__":
    main()
