"""Memory adapters benchmark: runs/sec and CPU per run with 50 … 10,000 runs held.

Run: `.venv/bin/python benchmarks/memory.py` (`--quick` for 50 and 500 held only).
Reported, never asserted.

The memory adapters are what users' test suites run on (`wfc.testing`), so the
figure that matters is how fast a run goes end to end there, and whether that
depends on how many runs the store already holds (a suite's kernel keeps every
run it made). For each shape (`seq3`: a → b → c; `fan`: a → [b1..b4] → c,
trivial stages) and each count of runs held, a test kernel is filled with that
many finished runs, then:
- one at a time: RUNS runs, each made and driven to its end by `TestKernel.run`
  (maintenance tick, work, outbox flush, as a user's test does);
- loop: RUNS runs created at once, then ticks and work until all have ended (as a
  host in one process does).
- fresh kernel: RUNS times, a test kernel made and one run driven to its end on it, as a
  test suite that builds a kernel per test does (the workflows themselves built once).
runs/sec is wall time; CPU per run is this process's CPU (`time.process_time`),
which moves less than wall time on a shared machine. Each case is measured
`--repeat` times (default 3) and the one with the median CPU per run kept.

`table_row` is the memory adapters' row of `runtime.py`'s main table, in the
columns the worker rows have (see there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cpu_meter  # noqa: E402
import runtime  # noqa: E402
from shapes import INPUT, workflows  # noqa: E402

from wfc.runtime.adapters.memory.clock import FakeClock, SystemClock  # noqa: E402
from wfc.runtime.commands import OutboxFlush  # noqa: E402
from wfc.runtime.records import TERMINAL, Status  # noqa: E402
from wfc.testing import TestKernel, make_test_kernel  # noqa: E402

HELD = (50, 500, 2_000, 10_000)


async def fill(tk: TestKernel, shape: str, held: int, made: int) -> int:
    """Make and finish runs until `held` are held (in batches, as the loop does)."""
    while made < held:
        batch = min(500, held - made)
        await loop(tk, shape, batch)
        made += batch
    return made


async def one_at_a_time(tk: TestKernel, shape: str, runs: int) -> None:
    for _ in range(runs):
        run = await tk.run(shape, INPUT)
        assert run.status is Status.COMPLETED, "a benchmark run failed"


async def fresh_kernels(shape: str, runs: int) -> None:
    """Per run, a new test kernel of the same workflows and one run on it (a suite's test)."""
    built = workflows().workflows()
    for _ in range(runs):
        run = await make_test_kernel(*built).run(shape, INPUT)
        assert run.status is Status.COMPLETED, "a benchmark run failed"


async def loop(tk: TestKernel, shape: str, runs: int) -> None:
    ids = [await tk.create_run(shape, INPUT) for _ in range(runs)]
    open_ = set(ids)
    while open_:
        await tk.tick()
        await tk.work()
        await tk.kernel.dispatch(OutboxFlush(max_events=10_000))
        for run_id in list(open_):
            run = await tk.persistence.get_run(run_id)
            if run is not None and run.status in TERMINAL:
                assert run.status is Status.COMPLETED, "a benchmark run failed"
                open_.discard(run_id)


def measured(step: Any, runs: int) -> dict[str, float]:
    """Runs/sec (wall) and CPU ms per run of `step()`, a coroutine factory."""
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.get_event_loop().run_until_complete(step())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"runs_per_s": runs / wall, "cpu_ms_per_run": cpu * 1000 / runs}


def median(measures: list[dict[str, float]]) -> dict[str, float]:
    """The measure with the median CPU per run (a shared machine's outliers are slow)."""
    return sorted(measures, key=lambda m: m["cpu_ms_per_run"])[(len(measures) - 1) // 2]


def filled(shape: str, held: int) -> TestKernel:
    """A fresh test kernel holding `held` finished runs of `shape`."""
    tk = make_test_kernel(*workflows().workflows())
    asyncio.get_event_loop().run_until_complete(fill(tk, shape, held, 0))
    return tk


def bench(shape: str, levels: tuple[int, ...], runs: int, repeat: int) -> list[dict[str, Any]]:
    rows = []
    for held in levels:
        # Each measure on a kernel of its own, filled to `held`: measures run one after
        # the other on one kernel would each start with more runs held than the last.
        ones, loops = [], []
        for _ in range(repeat):
            ones.append(measured(partial(one_at_a_time, filled(shape, held), shape, runs), runs))
            loops.append(measured(partial(loop, filled(shape, held), shape, runs), runs))
        one, many = median(ones), median(loops)
        row = {"shape": shape, "held": held, "one_at_a_time": one, "loop": many}
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    return rows


class WallClock(FakeClock):
    """A test kernel's clock that reads the wall: the fake clock of users' tests never
    moves, so its timestamps cannot time a run; only the one-at-a-time latencies use it."""

    def now(self) -> datetime:
        return SystemClock().now()


def table_row(shape: str, runs: int, isolated: int) -> dict[str, Any]:
    """The memory adapters' row of `runtime.py`'s main table, measured in this process.

    Two bursts of `runs` made at once and served by `loop` on one fresh test kernel (the
    first meets a cold kernel and is shown beside the second, as for the workers), CPU
    per run from `cpu_meter`; then `isolated` runs one at a time (`TestKernel.run`) on a
    kernel whose clock reads the wall, timed by their own records as the SQL rows are.
    """
    asyncio.set_event_loop(asyncio.new_event_loop())
    tk = make_test_kernel(*workflows().workflows())
    first = measured(partial(loop, tk, shape, runs), runs)
    before = cpu_meter.sample([])
    burst = measured(partial(loop, tk, shape, runs), runs)
    cpu = cpu_meter.per_run(before, cpu_meter.sample([]), runs)
    timed = make_test_kernel(*workflows().workflows(), clock=WallClock())
    latencies: list[float] = []
    gaps: list[float] = []
    for _ in range(isolated):
        run = asyncio.get_event_loop().run_until_complete(timed.run(shape, INPUT))
        assert run.status is Status.COMPLETED and run.completed_at is not None
        latencies.append(runtime.ms(run.completed_at - run.created_at))
        stages = asyncio.get_event_loop().run_until_complete(
            timed.persistence.stages_of_run(run.id)
        )
        gaps += runtime.stage_gaps(stages)
    return {
        "runs_per_s": burst["runs_per_s"],
        "first_burst_runs_per_s": first["runs_per_s"],
        "cpu_ms_per_run": cpu,
    } | runtime.latency_figures(latencies, gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs measured per case")
    parser.add_argument("--repeat", type=int, default=3, help="measures per case; median kept")
    parser.add_argument("--quick", action="store_true", help="50 and 500 runs held only")
    parser.add_argument("--held", type=int, action="append", help="only these held counts")
    parser.add_argument("--shape", choices=("seq3", "fan"), action="append", help="only these")
    parser.add_argument(
        "--out", type=Path, help='write {"held": rows, "fresh_kernel": by shape} as JSON here'
    )
    args = parser.parse_args()
    levels = tuple(sorted(args.held)) if args.held else HELD[:2] if args.quick else HELD
    asyncio.set_event_loop(asyncio.new_event_loop())
    rows = [
        row
        for shape in args.shape or ("seq3", "fan")
        for row in bench(shape, levels, args.runs, args.repeat)
    ]
    fresh = {
        shape: median(
            [
                measured(partial(fresh_kernels, shape, args.runs), args.runs)
                for _ in range(args.repeat)
            ]
        )
        for shape in args.shape or ("seq3", "fan")
    }
    if args.out:
        args.out.write_text(json.dumps({"held": rows, "fresh_kernel": fresh}, indent=2))
    print(
        "| shape | runs held | one at a time: runs/s | CPU per run | loop: runs/s | CPU per run |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        one, many = r["one_at_a_time"], r["loop"]
        print(
            f"| {r['shape']} | {r['held']:,} | {one['runs_per_s']:.0f} "
            f"| {one['cpu_ms_per_run']:.2f} ms | {many['runs_per_s']:.0f} "
            f"| {many['cpu_ms_per_run']:.2f} ms |"
        )
    print()
    print("| shape | a fresh kernel per run: runs/s | CPU per run |")
    print("|---|---|---|")
    for shape, m in fresh.items():
        print(f"| {shape} | {m['runs_per_s']:.0f} | {m['cpu_ms_per_run']:.2f} ms |")


if __name__ == "__main__":
    main()
