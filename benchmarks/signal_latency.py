"""Signal latency: a signal sent → the waiting run's next stage started.

The workflow is `wait` (a built-in wait for the signal `go`) → `next` (a stage
that notes when its body starts). A `WorkerHost` (four slots, LISTEN on
PostgreSQL) serves it in this process; `--runs` runs are created and left
waiting, then signalled one at a time. Each latency is from just before the
send to the start of `next`'s body, measured with one monotonic clock.

Two senders:

- `client`: another kernel on its own connection pool, serving no workflow,
  as `wfc runs signal` is: it reads the run's stored plan, completes the wait
  and queues `next` in one commit; the worker hears of the job by NOTIFY on
  PostgreSQL, and by its poll of the queue (`--poll-ms`) on SQLite, which has
  no such channel.
- `host`: `signal_run(kernel, …, host=worker)` in the worker's own process: the
  queued job is handed straight to one of its free slots.

    python benchmarks/signal_latency.py --db postgresql+asyncpg://postgres@127.0.0.1/bench
    python benchmarks/signal_latency.py --db sqlite+aiosqlite:///tmp/bench.db
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from wfc.plan import SIGNAL_IMPLEMENTATION, Plan, SignalSpec, SignalWait
from wfc.runtime import RunCreate, WorkerHost, WorkflowBuilder, define_stage, signal_run
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.commands import RunSignal
from wfc.runtime.hosts import make_kernel
from wfc.runtime.records import Status
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow

STARTED: dict[str, float] = {}
EVENTS: dict[str, asyncio.Event] = {}


class Empty(BaseModel):
    pass


class Go(BaseModel):
    n: int


async def _next(ctx: Any) -> Go:
    STARTED[ctx.run_id] = time.perf_counter()
    EVENTS[ctx.run_id].set()
    return Go(n=ctx.require("wait")["n"])


def _never(ctx: Any) -> Go:
    raise AssertionError("built-in")


def workflow() -> Workflow:
    built = (
        WorkflowBuilder("signalled", "Signalled", input=Empty)
        .pipe(define_stage(id="wait", output=Go, execute=_never))
        .pipe(define_stage(id="next", output=Go, execute=_next, needs=["wait"]))
        .build()
    )
    data = built.plan.model_dump()
    data["signals"] = [
        SignalSpec(
            name="go",
            payload_schema={
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
        ).model_dump()
    ]
    data["stages"][0].update(wait_for=SignalWait(signal="go"), implementation=SIGNAL_IMPLEMENTATION)
    plan = Plan.model_validate(data).with_fingerprint()
    classes = {"next": built.implementations["next"]}
    return Workflow(plan, classes, input_model=Empty)


async def _all_waiting(kernel: Any, run_ids: list[str]) -> None:
    while True:
        rows = [await kernel.deps.persistence.get_stage(r, "wait") for r in run_ids]
        if all(row is not None and row.status is Status.SUSPENDED for row in rows):
            return
        await asyncio.sleep(0.05)


async def measure(url: str, runs: int, sender: str, poll_ms: int) -> list[float]:
    storage = open_storage(url, worker_id="bench-worker")
    await storage.prepare()
    kernel = make_kernel(storage, WorkflowMap([workflow()]))
    worker = WorkerHost(
        kernel,
        concurrency=4,
        job_poll_interval=timedelta(milliseconds=poll_ms),
        wakeups=storage.wakeups,
        shutdown_grace=timedelta(seconds=1),
    )
    client_storage = open_storage(url, worker_id="bench-client")
    client = make_kernel(client_storage, WorkflowMap())
    await worker.start()
    latencies: list[float] = []
    try:
        run_ids = []
        for n in range(runs):
            created = await kernel.dispatch(
                RunCreate(idempotency_key=f"{sender}-{time.time_ns()}-{n}", workflow_id="signalled")
            )
            run_ids.append(created.workflow_run_id)
            EVENTS[created.workflow_run_id] = asyncio.Event()
        worker.wake_claims()
        await _all_waiting(kernel, run_ids)
        for n, run_id in enumerate(run_ids):
            sent = time.perf_counter()
            if sender == "client":
                await client.dispatch(
                    RunSignal(workflow_run_id=run_id, name="go", payload={"n": n})
                )
            else:
                await signal_run(kernel, run_id, "go", {"n": n}, host=worker)
            await asyncio.wait_for(EVENTS[run_id].wait(), 30)
            latencies.append((STARTED[run_id] - sent) * 1000)
    finally:
        await worker.stop()
        await storage.close()
        await client_storage.close()
    return latencies


def report(name: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{name:<12} n={len(ordered):<4} p50={statistics.median(ordered):7.2f} ms  "
        f"p99={p99:7.2f} ms  max={ordered[-1]:7.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--poll-ms", type=int, default=1000, help="the worker's queue poll")
    args = parser.parse_args()
    for sender in ("client", "host"):
        report(sender, await measure(args.db, args.runs, sender, args.poll_ms))


if __name__ == "__main__":
    asyncio.run(main())
