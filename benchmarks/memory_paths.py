"""Which change to the memory path would pay: variants of a `seq3` run, alternated in one process.

Run: `.venv/bin/python benchmarks/memory_paths.py` (about 1 min). Reported, never asserted.

On the shared development machine CPU per run moves by a third between two
processes run one after the other, more than most changes to the memory path
are worth. So each variant gets a test kernel of its own in this process, and
the variants take turns: ROUNDS rounds of RUNS runs each, one variant after the
other, CPU (`time.process_time`) per run for each; the median and the least
of the rounds are printed, and in how many rounds each variant was cheaper
than the first. Variants:

- `as is`: `TestKernel.run`, as a user's test drives a run;
- `hand-on`: the same, with the test loop handing itself the job a transition
  queued when it is the one its next dequeue would lease anyway
  (`wfc.runtime.handoff`): no dequeue, no start transaction and no reads for
  that stage, two transactions fewer per `seq3` run;
- `no gc`: the same as `as is` with Python's cyclic garbage collector off while
  it runs (what allocation costs beyond the allocations themselves).

Then the cost of the single steps the directions would save: an empty memory
transaction, and pydantic's model construction, `model_construct` and dump.
`--gc-only` reports the CPU spent inside the cyclic collector instead
(`gc.callbacks`), over 2,000 runs of one test kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import timeit
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from shapes import workflows  # noqa: E402

from wfc.runtime.adapters.memory import MemoryJobTransport  # noqa: E402
from wfc.runtime.commands import JobExecuteResult, OutboxFlush  # noqa: E402
from wfc.runtime.events import StageStarted, event_payload  # noqa: E402
from wfc.runtime.handoff import handing_off_to  # noqa: E402
from wfc.runtime.hosts import process_job  # noqa: E402
from wfc.runtime.job_records import JobRecord  # noqa: E402
from wfc.runtime.records import TERMINAL  # noqa: E402
from wfc.testing import TestKernel, make_test_kernel  # noqa: E402

INPUT = {"n": 0}


class NextInLine:
    """A taker for the test loop: one job, only while no job is PENDING (so it is the one
    the next dequeue would lease)."""

    def __init__(self, jobs: MemoryJobTransport) -> None:
        self.jobs = jobs
        self.taken: list[JobRecord] = []

    def free_slots(self) -> int:
        return 0 if self.taken or self.jobs.has_pending() else 1  # (from the PENDING index)

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        self.taken += jobs

    def serves(self, queue: str) -> bool:
        return True


async def as_is(tk: TestKernel, shape: str) -> None:
    await tk.run(shape, INPUT)


async def handing_on(tk: TestKernel, shape: str) -> None:
    """`TestKernel.run` with the loop's `work` handing on (ticks, flushes as it does)."""
    run_id = await tk.create_run(shape, INPUT)
    assert isinstance(tk.jobs, MemoryJobTransport)
    taker = NextInLine(tk.jobs)
    plans = tk.registry.plans()
    while True:
        await tk.tick()
        while True:
            if taker.taken:
                job = taker.taken.pop()
            else:
                leased = await tk.jobs.dequeue(plans=plans)
                if not leased:
                    break
                job = leased[0]
            with handing_off_to(taker):
                await process_job(tk.kernel, job)
        await tk.kernel.dispatch(OutboxFlush(max_events=10_000))
        run = await tk.persistence.get_run(run_id)
        assert run is not None
        if run.status in TERMINAL:
            return


Variant = Callable[[TestKernel, str], Awaitable[None]]


async def measure(
    variants: dict[str, tuple[Variant, bool]], shape: str, runs: int, rounds: int
) -> dict[str, list[float]]:
    kernels = {name: make_test_kernel(*workflows().workflows()) for name in variants}
    for name, (step, _) in variants.items():
        for _ in range(50):  # warm: plans recorded, caches filled
            await step(kernels[name], shape)
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (step, collect) in variants.items():
            tk = kernels[name]
            if not collect:
                gc.disable()
            started = time.process_time()
            for _ in range(runs):
                await step(tk, shape)
            cpu[name].append((time.process_time() - started) * 1000 / runs)
            gc.enable()
    return cpu


def step_costs() -> list[tuple[str, float]]:
    """µs per call of the single steps the directions would save."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    event = StageStarted(
        timestamp=now, workflow_run_id="r", stage_id="s", stage_name="s", stage_number=1, attempt=1
    )
    tk = make_test_kernel()

    async def transactions(count: int) -> float:
        started = time.process_time()
        for _ in range(count):
            async with tk.persistence.transaction():
                pass
        return (time.process_time() - started) * 1e6 / count

    loop = asyncio.new_event_loop()
    transaction = min(loop.run_until_complete(transactions(5_000)) for _ in range(5))
    loop.close()
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("JobExecuteResult(...)", lambda: JobExecuteResult(outcome="completed", output=INPUT)),
        (
            "JobExecuteResult.model_construct(...)",
            lambda: JobExecuteResult.model_construct(outcome="completed", output=INPUT),
        ),
        (
            "StageStarted(...)",
            lambda: StageStarted(
                timestamp=now,
                workflow_run_id="r",
                stage_id="s",
                stage_name="s",
                stage_number=1,
                attempt=1,
            ),
        ),
        ("event_payload(event) (its JSON dump)", lambda: event_payload(event)),
    ]
    number = 5_000
    costs = [
        (name, min(timeit.repeat(call, number=number, repeat=5)) * 1e6 / number)
        for name, call in calls
    ]
    return [("empty memory transaction (with its yield)", transaction), *costs]


async def collected(shape: str, runs: int) -> tuple[float, float, float]:
    """CPU per run, CPU inside the cyclic GC per run (both ms) and collections per 100
    runs, over `runs` runs of one test kernel after 100."""
    tk = make_test_kernel(*workflows().workflows())
    for _ in range(100):
        await as_is(tk, shape)
    inside, since, count = [0.0], [0.0], [0]

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            since[0] = time.process_time()
        else:
            inside[0] += time.process_time() - since[0]
            count[0] += 1

    gc.callbacks.append(watch)
    started = time.process_time()
    try:
        for _ in range(runs):
            await as_is(tk, shape)
    finally:
        gc.callbacks.remove(watch)
    total = time.process_time() - started
    return total * 1000 / runs, inside[0] * 1000 / runs, count[0] * 100 / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="runs per variant per round")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of every variant")
    parser.add_argument("--shape", choices=("seq3", "fan"), default="seq3")
    parser.add_argument(
        "--gc-only",
        action="store_true",
        help="only the collector's share of 2,000 runs (runs on older checkouts too)",
    )
    args = parser.parse_args()
    if args.gc_only:
        per_run, inside, collections = asyncio.new_event_loop().run_until_complete(
            collected(args.shape, 2_000)
        )
        print(
            f"{args.shape}: {per_run:.3f} ms CPU per run, {inside * 1000:.1f} µs of it in the cyclic "
            f"GC ({inside / per_run:.1%}), {collections:.1f} collections per 100 runs"
        )
        return
    variants: dict[str, tuple[Variant, bool]] = {
        "as is": (as_is, True),
        "hand-on": (handing_on, True),
        "no gc": (as_is, False),
    }
    cpu = asyncio.new_event_loop().run_until_complete(
        measure(variants, args.shape, args.runs, args.rounds)
    )
    first = cpu["as is"]
    print(f"{args.shape}, {args.rounds} rounds of {args.runs} runs: CPU per run")
    print("| variant | median | least | rounds cheaper than `as is` |")
    print("|---|---|---|---|")
    for name, measures in cpu.items():
        cheaper = sum(m < f for m, f in zip(measures, first, strict=True))
        shown = "" if name == "as is" else f"{cheaper} of {len(measures)}"
        print(
            f"| {name} | {statistics.median(measures):.3f} ms | {min(measures):.3f} ms | {shown} |"
        )
    print()
    print("| step | µs per call |")
    print("|---|---|")
    for name, cost in step_costs():
        print(f"| {name} | {cost:.1f} |")


if __name__ == "__main__":
    main()
