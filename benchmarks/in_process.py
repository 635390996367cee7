"""In-process benchmark: runs/s and CPU per run with the worker in the same process.

Run: `.venv/bin/python benchmarks/in_process.py [--db URL]` (default: a fresh
SQLite file). Reported, never asserted.

What `wfc run` and `run_and_wait` do when no worker serves the database: a
`WorkerHost` in the calling process, on the same engine, so the runs it creates
are handed to it without a poll and its writers share one process. RUNS runs
of each shape are created at once and served by one host of 8 slots; runs/s =
RUNS / (last completion − first creation) from the database's timestamps, and
CPU per run is this process's (`time.process_time`), creation included. A
first burst warms connections and statements; the second one is reported,
with the SQL statements it sent per stage executed (creation and claim
included). The bursts are `runtime.py`'s, which shows `measure` as its SQLite
"in process" rows, with `isolated` runs one at a time for the latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import runtime  # noqa: E402
from shapes import stages_of, workflows  # noqa: E402

from wfc.runtime.adapters.sql import PoolOptions, SqlStorage, open_storage  # noqa: E402
from wfc.runtime.hosts import WorkerHost, make_kernel  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402
from wfc.runtime.kernel import Kernel  # noqa: E402


@asynccontextmanager
async def hosted(url: str) -> AsyncIterator[tuple[Kernel, SqlStorage, WorkerHost]]:
    """A kernel on `url` with a host of 8 slots serving it in this process."""
    storage = open_storage(url, worker_id="bench", pool=PoolOptions.for_slots(8))
    await storage.prepare()
    kernel = make_kernel(storage, workflows())
    host = WorkerHost(
        kernel, worker_id="bench", concurrency=8, job_poll_interval=timedelta(milliseconds=200)
    )
    serving = asyncio.create_task(host.serve())
    try:
        yield kernel, storage, host
    finally:
        await host.stop()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await storage.close()


async def measure(url: str, shape: str, runs: int, isolated: int = 0) -> dict[str, Any]:
    """Two bursts of `runs` (the second reported, with its statements per stage), then
    `isolated` runs one at a time."""
    async with hosted(url) as (kernel, storage, host):
        first, _ = await runtime._burst(kernel, storage, shape, runs, "first", [])
        sent: list[str] = []
        rate, cpu = await runtime._burst(kernel, storage, shape, runs, "burst", [], statements=sent)
        row: dict[str, Any] = {
            "shape": shape,
            "runs_per_s": rate,
            "first_burst_runs_per_s": first,
            "statements_per_stage": len(sent) / (runs * stages_of(shape)),
        } | ({"cpu_ms_per_run": cpu} if cpu else {})
        if isolated:
            row |= await runtime.one_at_a_time(
                kernel, storage, shape, isolated, wake=host.wake_claims
            )
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--runs", type=int, default=200, help="runs per burst")
    args = parser.parse_args()
    print("| shape | runs/s | CPU per run (this process) | first burst runs/s | SQL per stage |")
    print("|---|---|---|---|---|")
    for shape in ("seq3", "fan"):
        with tempfile.TemporaryDirectory() as tmp:
            url = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'in-process.db'}"
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                row = runner.run(measure(url, shape, args.runs))
        cpu = row.get("cpu_ms_per_run")  # read from /proc: Linux only
        spent = f"{cpu['driver']:.1f} ms" if cpu else "–"
        print(
            f"| {shape} | {row['runs_per_s']:.0f} | {spent} "
            f"| {row['first_burst_runs_per_s']:.0f} | {row['statements_per_stage']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
