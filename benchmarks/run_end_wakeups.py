"""From a run's end, committed by another process, to `wait_for_run` here noticing it.

Run: `.venv/bin/python benchmarks/run_end_wakeups.py` (`--samples N`, `--database URL`
for PostgreSQL, already at `wfc db upgrade`'s revision). Reported, never asserted.

This process creates a run (no worker serves it: it stays PENDING), waits for it with
`wait_for_run(kernel, run_id)` (no host, the default 50 ms poll), and once the waiter has
looked at it, and a random 0–50 ms later (so the end falls anywhere in a poll), a second
process (this script with `--ender`, started once) cancels it and prints
`time.monotonic()` as its `dispatch` returned, after the commit. The figure is the time
from then to `wait_for_run` returning here (Linux's monotonic clock is one for every
process). Two waiters, alternated sample by sample:
- poll: a kernel whose waiters hear no database (`RunEndWaits()`), as before: the end is
  seen at the next poll;
- woken: the storage's waiters (`SqlStorage.run_end_waits`): NOTIFY on PostgreSQL, the
  file's `data_version` on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import INPUT, workflows

from wfc.runtime import RunCancel, RunCreate, Status
from wfc.runtime.adapters.sql import SqlStorage, open_storage
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.kernel import Kernel
from wfc.runtime.run_end_waits import RunEndWaits


async def ender(url: str) -> None:
    """Cancel each run id read from stdin; print the monotonic time after each commit."""
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            await kernel.dispatch(RunCancel(workflow_run_id=line.strip()))
            print(time.monotonic(), flush=True)
    finally:
        await storage.close()


async def sample(kernel: Kernel, end: asyncio.subprocess.Process, n: int) -> float:
    """Milliseconds from the other process's commit to this waiter's return."""
    created = await kernel.dispatch(
        RunCreate(idempotency_key=f"bench-{n}-{random.random()}", workflow_id="seq3", input=INPUT)
    )
    looked = asyncio.Event()
    waiting = asyncio.create_task(
        wait_for_run(kernel, created.workflow_run_id, on_change=lambda _run: looked.set())
    )
    await looked.wait()
    await asyncio.sleep(random.uniform(0, 0.05))
    assert end.stdin is not None and end.stdout is not None
    end.stdin.write(f"{created.workflow_run_id}\n".encode())
    await end.stdin.drain()
    committed = float(await end.stdout.readline())
    run = await waiting
    noticed = time.monotonic()
    assert run.status is Status.CANCELLED
    return (noticed - committed) * 1000


class _Unheard:
    """`storage` with waiters that hear no database (as every waiter did before)."""

    def __init__(self, storage: SqlStorage) -> None:
        self._storage = storage
        self.run_end_waits = RunEndWaits()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


async def measure(url: str, samples: int) -> dict[str, list[float]]:
    storage = open_storage(url)
    await storage.prepare()
    woken = make_kernel(storage, workflows())
    polled = make_kernel(_Unheard(storage), workflows())
    end = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--ender",
        "--database",
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    figures: dict[str, list[float]] = {"poll": [], "woken": []}
    try:
        for n in range(samples + 5):
            for name, kernel in (("poll", polled), ("woken", woken)):
                latency = await sample(kernel, end, n)
                if n >= 5:  # five to warm up
                    figures[name].append(latency)
    finally:
        assert end.stdin is not None
        end.stdin.close()
        await end.wait()
        await storage.close()
    return figures


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--database", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--ender", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ender:
        asyncio.run(ender(args.database))
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite+aiosqlite:///{tmp}/wakeups.db"
        figures = asyncio.run(measure(url, args.samples))
    print(f"| {args.samples} runs ended by another process | p50 | p99 | max |")
    print("|---|---|---|---|")
    for name, values in figures.items():
        print(
            f"| {name} | {statistics.median(values):.1f} ms | "
            f"{_percentile(values, 0.99):.1f} ms | {max(values):.1f} ms |"
        )


if __name__ == "__main__":
    main()
