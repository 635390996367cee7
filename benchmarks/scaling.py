"""Scaling benchmark: what a stage costs against run length, group width and a full table.

Run: `.venv/bin/python benchmarks/runtime.py --scaling` (options below; PostgreSQL at
`WFC_BENCH_DATABASE_URL` as for the main table). Reported, never asserted.

For each engine (the memory adapters in this process; a SQLite file and PostgreSQL,
each with one `bench_worker.py` process) and each shape — `seq3`/`seq10`/`seq30`
(that many stages in a row) and `fan4`/`fan16`/`fan64` (a → [b1..bN] → c) — a burst
of runs sized to about `--stage-budget` stages is created at once and waited for
(after a first burst that warms the worker up), and reported as:
- runs/s and stages/s (stages executed per second: what should not fall with width);
- CPU per stage: the worker's (from /proc) for SQL, this process's for memory — on a
  shared machine that moves much less than wall time;
- statements per stage, dequeued and handed (`runtime.statements_per_stage`).

`--prefill N` (default 100,000) adds a row per database: seq3 on tables that already
hold N finished seq3 runs (their runs, stages, jobs and outbox rows copied in bulk
by SQL from a real run), with the time of a `wfc runs list` page and of a claim scan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import memory  # noqa: E402
import runtime  # noqa: E402
from prefill import prefill  # noqa: E402
from shapes import SCALING_FANS, SCALING_SEQUENCES, stages_of, workflows  # noqa: E402

from wfc.runtime.adapters.sql import open_storage  # noqa: E402
from wfc.runtime.commands import RunClaimPending  # noqa: E402
from wfc.runtime.hosts import make_kernel  # noqa: E402
from wfc.testing import make_test_kernel  # noqa: E402

SHAPES = tuple(f"seq{n}" for n in SCALING_SEQUENCES) + tuple(f"fan{n}" for n in SCALING_FANS)


def runs_for(shape: str, budget: int) -> int:
    """Runs of `shape` in a burst of about `budget` stages (at least 8)."""
    return max(8, budget // stages_of(shape))


def per_stage(row: dict[str, Any], shape: str, runs: int, rate: float, cpu_ms: float) -> None:
    """Fill in the per-run and per-stage figures of `row`."""
    stages = stages_of(shape)
    row |= {
        "shape": shape,
        "stages": stages,
        "runs": runs,
        "runs_per_s": rate,
        "stages_per_s": rate * stages,
        "cpu_ms_per_stage": cpu_ms / stages,
    }


# -- memory ----------------------------------------------------------------------------


def memory_case(shape: str, budget: int) -> dict[str, Any]:
    """A burst in this process on a fresh test kernel (after one that warms it up)."""
    runs = runs_for(shape, budget)
    tk = make_test_kernel(*workflows().workflows())
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(memory.loop(tk, shape, max(2, runs // 4)))  # warm-up
        measured = memory.measured(lambda: memory.loop(tk, shape, runs), runs)
    finally:
        loop.close()
    row: dict[str, Any] = {"engine": "wfc", "database": "memory"}
    per_stage(row, shape, runs, measured["runs_per_s"], measured["cpu_ms_per_run"])
    return row


# -- SQLite and PostgreSQL ---------------------------------------------------------------


async def _bursts(url: str, shape: str, runs: int, pids: list[int]) -> tuple[float, float]:
    """Runs/s of the second of two bursts on the running worker, and the worker's CPU ms
    per run in it."""
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())
    try:
        await runtime._burst(kernel, storage, shape, max(2, runs // 4), "warm", pids)
        rate, cpu = await runtime._burst(kernel, storage, shape, runs, "burst", pids)
    finally:
        await storage.close()
    return rate, (cpu or {}).get("workers", 0.0)


def with_worker(url: str, measure: Callable[[list[int]], Coroutine[Any, Any, Any]]) -> Any:
    """`measure(pids)` while one worker process (8 slots) serves `url`."""
    process = runtime.start([sys.executable, str(HERE / "bench_worker.py"), url, "w0", "8"])
    try:
        return asyncio.run(measure([process.pid]))
    finally:
        runtime.stop_all([process])


def sql_case(url: str, database: str, shape: str, budget: int) -> dict[str, Any]:
    """A burst with one worker on the fresh database at `url`, then its statements."""
    runs = runs_for(shape, budget)
    rate, cpu = with_worker(url, lambda pids: _bursts(url, shape, runs, pids))
    row: dict[str, Any] = {"engine": "wfc", "database": database}
    per_stage(row, shape, runs, rate, cpu)
    row["statements_per_stage"] = asyncio.run(runtime.statements_per_stage(url, shape))
    return row


async def _listing_and_claims(url: str, repeat: int = 20) -> dict[str, float]:
    """Median ms of the first page of `wfc runs list` and of a claim that finds nothing
    pending (the scan every worker tick makes), on the tables as they are."""
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())
    timings: dict[str, list[float]] = {"runs_list_ms": [], "claim_ms": []}
    try:
        for _ in range(repeat):
            began = time.perf_counter()
            await storage.persistence.list_runs(limit=20)
            timings["runs_list_ms"].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await kernel.dispatch(RunClaimPending(worker_id="probe"))
            timings["claim_ms"].append((time.perf_counter() - began) * 1000)
    finally:
        await storage.close()
    return {name: median(values) for name, values in timings.items()}


def prefilled_case(url: str, database: str, budget: int, held: int) -> dict[str, Any]:
    """seq3 on tables holding `held` finished runs: throughput, listing and claims."""
    asyncio.run(prefill(url, held))
    row = sql_case(url, database, "seq3", budget)
    row |= asyncio.run(_listing_and_claims(url)) | {"held": held}
    return row


# -- the table ---------------------------------------------------------------------------


def measure(args: argparse.Namespace, tmp: Path, stamp: str) -> list[dict[str, Any]]:
    """Every scaling row the arguments ask for, printed to stderr as each is measured."""
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    shapes = args.scaling_shape or SHAPES
    databases = args.database or ("memory", "sqlite", "postgres")
    for database in databases:
        for shape in shapes:
            if database == "memory":
                keep(memory_case(shape, args.stage_budget))
                continue
            name = f"wfc_scaling_{stamp}_{shape}"
            keep(
                on_fresh(
                    database,
                    name,
                    tmp,
                    lambda url, s=shape, d=database: sql_case(url, d, s, args.stage_budget),
                )
            )
        if database != "memory" and args.prefill:
            name = f"wfc_scaling_{stamp}_prefilled"
            keep(
                on_fresh(
                    database,
                    name,
                    tmp,
                    lambda url, d=database: prefilled_case(url, d, args.stage_budget, args.prefill),
                )
            )
    return rows


def on_fresh(database: str, name: str, tmp: Path, case: Callable[[str], Any]) -> Any:
    """`case(url)` on a fresh, migrated SQLite file or PostgreSQL database."""
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
        asyncio.run(runtime._migrate(url))
        return case(url)
    with runtime.postgres(name) as url:
        asyncio.run(runtime._migrate(url))
        return case(url)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| db | shape | stages | runs/s | stages/s | CPU per stage | statements per stage "
        "(dequeued / handed) |"
    )
    print("|" + "---|" * 7)
    for r in rows:
        shape = r["shape"] + (f" + {r['held']:,} runs held" if "held" in r else "")
        counted = r.get("statements_per_stage")
        statements = f"{counted['dequeued']:.1f} / {counted['handed']:.1f}" if counted else "–"
        print(
            f"| {r['database']} | {shape} | {r['stages']} | {r['runs_per_s']:.1f} "
            f"| {r['stages_per_s']:.0f} | {r['cpu_ms_per_stage']:.2f} ms | {statements} |"
        )
    for r in rows:
        if "held" in r:
            print(
                f"{r['database']}, {r['held']:,} finished runs held: `wfc runs list` first page "
                f"{r['runs_list_ms']:.1f} ms, a claim finding nothing {r['claim_ms']:.1f} ms "
                "(medians of 20)"
            )
    for database in ("memory", "sqlite", "postgres"):
        narrow = [r for r in rows if r["database"] == database and r["shape"] == "fan4"]
        wide = [r for r in rows if r["database"] == database and r["shape"] == "fan64"]
        if narrow and wide:
            ratio = wide[0]["stages_per_s"] / narrow[0]["stages_per_s"]
            cpu = wide[0]["cpu_ms_per_stage"] / narrow[0]["cpu_ms_per_stage"]
            print(f"{database}: fan64/fan4 stages/s {ratio:.2f}, CPU per stage {cpu:.2f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scaling table's options, on `runtime.py`'s parser."""
    parser.add_argument("--scaling", action="store_true", help="the scaling table instead")
    parser.add_argument(
        "--stage-budget", type=int, default=1200, help="stages per scaling burst (about)"
    )
    parser.add_argument(
        "--prefill", type=int, default=100_000, help="finished runs held (0: no such row)"
    )
    parser.add_argument(
        "--scaling-shape", choices=SHAPES, action="append", help="only these scaling shapes"
    )
