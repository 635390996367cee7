"""Runs created where a host serves them: statements, transactions and WAL pages per run.

Run: `.venv/bin/python benchmarks/created_here.py [--shape seq3] [--runs 20] [--wake]`.
Reported, never asserted.

Two cases, each on a fresh SQLite file with the WAL's checkpoints held off (as
`wal_pages.py`), after three warm-up runs:

- `run_and_wait`: `runs` calls in a row, each with its own one-run host (what
  `wfc run` does once per process), everything the calls send counted, their
  watching of the run included.
- `idle host`: `runs` runs created one at a time with `kernel.dispatch(RunCreate)`
  beside the in-process host of `in_process.hosted` (8 slots), each waited for
  before the next is created; the reads this script makes to wait are left out.
  With `--wake` the host's claims are woken after each creation (what
  `runtime.one_at_a_time` does: without it, code that does not claim in the create
  finds the run at its next claim poll, 200 ms there).

CPU per run is this process's (`time.process_time`), both threads.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import in_process  # noqa: E402
from runtime import INPUT  # noqa: E402
from shapes import workflows  # noqa: E402

from wfc.runtime import RunCreate, Status  # noqa: E402
from wfc.runtime.adapters.sql import SqlStorage, direct, open_storage, sqlite_writes  # noqa: E402
from wfc.runtime.hosts import make_kernel, run_and_wait  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402
from wfc.runtime.hosts.waiting import wait_at_most  # noqa: E402
from wfc.runtime.records import TERMINAL  # noqa: E402

_WARM = 3


async def _counted(
    storage: SqlStorage, wal: Path, runs: int, one: Callable[[int], Awaitable[int]]
) -> dict[str, float]:
    """Per-run figures of `runs` calls of `one(n)` (which returns how many statements it
    sent that are not the run's), after `_WARM` calls."""
    for n in range(_WARM):
        await one(-1 - n)
    start = wal.stat().st_size
    cpu = time.process_time()
    mine = 0
    with direct.watching(storage.engine) as sent:
        for n in range(runs):
            mine += await one(n)
    cpu = time.process_time() - cpu
    page = 4096 + 24  # a WAL frame: its header and one page
    return {
        "statements": (len(sent) - mine) / runs,
        "transactions": sum(1 for sql in sent if sql.startswith("COMMIT")) / runs,
        "wal_pages": (wal.stat().st_size - start) / page / runs,
        "cpu_ms": cpu * 1000 / runs,
    }


async def _run_and_wait(url: str, wal: Path, shape: str, runs: int) -> dict[str, float]:
    storage = open_storage(url)
    await storage.prepare()
    kernel = make_kernel(storage, workflows())

    async def one(n: int) -> int:
        run = await run_and_wait(kernel, shape, INPUT, idempotency_key=f"raw-{n}")
        assert run.status is Status.COMPLETED, run.error
        return 0

    try:
        return await _counted(storage, wal, runs, one)
    finally:
        await storage.close()


async def _idle_host(url: str, wal: Path, shape: str, runs: int, wake: bool) -> dict[str, float]:
    async with in_process.hosted(url) as (kernel, storage, host):

        async def one(n: int) -> int:
            created = await kernel.dispatch(
                RunCreate(idempotency_key=f"idle-{n}", workflow_id=shape, input=INPUT)
            )
            if wake:
                host.wake_claims()
            signal = host.run_end_signal(created.workflow_run_id)
            reads = 0
            while True:
                ended = signal.arm()  # before the read: an end after it sets this event
                reads += 1
                run = await storage.persistence.get_run(created.workflow_run_id)
                if run is not None and run.status in TERMINAL:
                    return reads
                await wait_at_most(ended, timedelta(milliseconds=50))

        return await _counted(storage, wal, runs, one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="seq3")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--wake", action="store_true", help="wake the idle host's claims")
    args = parser.parse_args()
    sqlite_writes.Checkpoints.due = lambda self: False  # type: ignore[method-assign]
    cases: list[tuple[str, Callable[[str, Path], Awaitable[dict[str, Any]]]]] = [
        ("run_and_wait", lambda url, wal: _run_and_wait(url, wal, args.shape, args.runs)),
        ("idle host", lambda url, wal: _idle_host(url, wal, args.shape, args.runs, args.wake)),
    ]
    print("| case | statements | transactions | WAL pages | CPU ms | per run |")
    print("|---|---|---|---|---|---|")
    for name, case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            database = Path(tmp) / "created-here.db"
            url = f"sqlite+aiosqlite:///{database}"
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                row = runner.run(case(url, Path(f"{database}-wal")))
        print(
            f"| {name} | {row['statements']:.1f} | {row['transactions']:.2f} "
            f"| {row['wal_pages']:.1f} | {row['cpu_ms']:.1f} | {args.shape} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
