"""Fleet limits: what a stage's `concurrency` or `rate` limit costs, and what it lets through.

Run: `.venv/bin/python benchmarks/limits.py` (PostgreSQL at `WFC_BENCH_DATABASE_URL`,
default the local server, in a database `wfc_bench_limits` created and dropped; SQLite
in a temporary file). Reported, never asserted, except that the limits held. About three
minutes with the defaults; `--database`, `--case`, `--runs`, `--jobs`, `--rate-seconds`,
`--poll-interval` and the limits' own settings change what runs.

Every workflow has one stage, `call`, whose body returns at once or sleeps SLEEP_MS
(20 ms by default) without holding the CPU. Three measurements, on each database:

1. round trips (`--case round-trips`): RUNS runs of each of `free` (no limit),
   `bounded` (`concurrency 1000`, never full) and `metered` (`rate 100000 per minute`,
   never full) are created and claimed, then the driver leases their jobs in process,
   `dequeue(1)` or `dequeue(8)`, and runs each (`process_job`, as a worker slot does),
   counting every statement sent (`direct.watching`, BEGIN and COMMIT included; on
   PostgreSQL each is a round trip): statements per job for the dequeue, and for
   dequeue + execution + completion; and the statements of a dequeue that finds
   nothing (a worker's idle poll) or only jobs under a full limit.
2. throughput at the limit (`none`, `concurrency`, `per-customer`): JOBS runs of
   `slow_free` (no limit), `slow_bounded` (`concurrency 4`) and `slow_per_customer`
   (`concurrency 4 per input.customer`, the runs spread over 10 customers) are created
   and claimed, then 4 worker processes of 8 slots start and drain them: jobs/s = JOBS
   / (last completion − first lease), from the jobs' own timestamps, and over the
   middle 80 % of completions (without the workers' start); against the ideal (the
   slots the limit allows / the stage's time: 200/s for `concurrency 4`); the most
   stage bodies that overlapped, in all and for one customer (each body records its
   own start and end in its output: never above the limit); statements per job,
   everything the workers sent, idle polls included.
3. rate (`rate`): `paced` (`rate 10 per second`: RateLimit(max=10, window_ms=1000)),
   RATE × RATE_SECONDS runs drained by 2 workers: starts/s after the first window
   ((JOBS − 10) / (last lease − first lease): 10/s when every window is used to the
   full), and the most leases in any 1 s window (never above 10).

Workers are real processes of this script (`limits.py worker URL ID SLOTS POLL
SETTINGS`): a `WorkerHost` as `wfc worker` runs it, polling every POLL seconds
(`wfc worker --poll-interval`, 1 s by default) and, on PostgreSQL, woken by
LISTEN/NOTIFY.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from runtime import _migrate, postgres, stop_all  # noqa: E402

from wfc.plan import ConcurrencyLimit, RateLimit  # noqa: E402
from wfc.runtime import StageDefinition, WorkflowBuilder, define_stage  # noqa: E402
from wfc.runtime.adapters.sql import PoolOptions, SqlStorage, direct, open_storage  # noqa: E402
from wfc.runtime.adapters.sql.schema import jobs, runs  # noqa: E402
from wfc.runtime.commands import RunClaimPending, RunCreate  # noqa: E402
from wfc.runtime.hosts import WorkerHost, make_kernel, process_job  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402
from wfc.runtime.kernel import Kernel  # noqa: E402
from wfc.runtime.registry import WorkflowMap  # noqa: E402
from wfc.runtime.workflow import Workflow  # noqa: E402

DATABASE = "wfc_bench_limits"
CUSTOMERS = 10
CASES = ("round-trips", "none", "concurrency", "per-customer", "rate")


@dataclass(frozen=True)
class Settings:
    """What the driver and its workers must agree on: the limits are part of the plans."""

    sleep_ms: int = 20
    concurrency: int = 4
    rate: int = 10
    window_ms: int = 1000


class Ask(BaseModel):
    customer: str
    n: int


class Done(BaseModel):
    n: int
    began: float = 0.0  # the body's own start and end (CLOCK_MONOTONIC: one clock for every
    ended: float = 0.0  # worker of this machine), inside the lease: spans show the bound


SLEEP_S = 0.0  # the slow stages' sleep, set from the settings in each process


async def call(ctx: Any) -> Done:
    return Done(n=ctx.input.n)


async def slow_call(ctx: Any) -> Done:
    began = time.monotonic()
    await asyncio.sleep(SLEEP_S)
    return Done(n=ctx.input.n, began=began, ended=time.monotonic())


def _workflow(workflow_id: str, body: Any, **limits: Any) -> Workflow:
    stage: StageDefinition = define_stage(id="call", input=Ask, output=Done, execute=body)
    if limits:
        stage = replace(stage, plan=stage.plan.model_copy(update=limits))
    return WorkflowBuilder(workflow_id, workflow_id, input=Ask).pipe(stage).build()


def workflows(settings: Settings) -> WorkflowMap:
    global SLEEP_S
    SLEEP_S = settings.sleep_ms / 1000
    at_most = settings.concurrency
    return WorkflowMap(
        [
            _workflow("free", call),
            _workflow("bounded", call, concurrency=ConcurrencyLimit(max=1000)),
            _workflow("metered", call, rate=RateLimit(max=100_000, window_ms=60_000)),
            _workflow("single", call, concurrency=ConcurrencyLimit(max=1)),
            _workflow("slow_free", slow_call),
            _workflow("slow_bounded", slow_call, concurrency=ConcurrencyLimit(max=at_most)),
            _workflow(
                "slow_per_customer",
                slow_call,
                concurrency=ConcurrencyLimit(max=at_most, per=("input", "customer")),
            ),
            _workflow(
                "paced",
                call,
                rate=RateLimit(max=settings.rate, window_ms=settings.window_ms),
            ),
        ]
    )


# -- a worker process ------------------------------------------------------------------


async def serve(url: str, worker_id: str, slots: int, poll: float, settings: Settings) -> None:
    """A `WorkerHost` as `wfc worker` runs it, counting the statements it sends; prints
    `ready`, and on SIGTERM one JSON line: its stats and statements."""
    storage = open_storage(url, worker_id=worker_id, pool=PoolOptions.for_slots(slots))
    await storage.prepare()
    host = WorkerHost(
        make_kernel(storage, workflows(settings)),
        worker_id=worker_id,
        concurrency=slots,
        job_poll_interval=timedelta(seconds=poll),
        wakeups=storage.wakeups,
    )
    ready = asyncio.get_running_loop().call_later(0.2, lambda: print("ready", flush=True))
    with direct.watching(storage.engine) as sent:
        stats = await host.serve()
    ready.cancel()
    await storage.close()
    report = asdict(stats) | {
        "statements": len(sent),
        "by_statement": Counter(sent).most_common(20),
    }
    print(json.dumps(report), flush=True)


def start_workers(
    url: str, count: int, slots: int, poll: float, settings: Settings
) -> list[subprocess.Popen[str]]:
    """Start `count` worker processes at once; return when each has said `ready`."""
    script = str(Path(__file__).resolve())
    given = json.dumps(asdict(settings))
    procs = [
        subprocess.Popen(
            [sys.executable, script, "worker", url, f"w{i}", str(slots), str(poll), given],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    for process in procs:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "ready":
            for each in procs:
                each.kill()
            raise RuntimeError(f"a worker did not start: {line!r}")
    return procs


# -- runs ------------------------------------------------------------------------------


async def create_and_claim(
    kernel: Kernel, workflow_id: str, count: int, *, tag: str = "fleet"
) -> None:
    """`count` runs of `workflow_id` (customers c0..c9 in turn), their jobs queued."""
    for n in range(count):
        await kernel.dispatch(
            RunCreate(
                idempotency_key=f"{workflow_id}-{tag}-{n}",
                workflow_id=workflow_id,
                input={"customer": f"c{n % CUSTOMERS}", "n": n},
            )
        )
    while (await kernel.dispatch(RunClaimPending(worker_id="driver", max_claims=500))).claimed:
        pass


_FINISHED = text(
    "SELECT count(*) FROM runs WHERE workflow_id = :w "
    "AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')"
)


async def wait_for(storage: SqlStorage, workflow_id: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with storage.engine.connect() as conn:
            done = int((await conn.execute(_FINISHED, {"w": workflow_id})).scalar_one())
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workflow_id}: {done} of {count} runs ended in {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def job_times(
    storage: SqlStorage, workflow_id: str
) -> tuple[list[tuple[datetime, datetime]], dict[str, list[tuple[float, float]]]]:
    """(leased, completed) of each completed job of `workflow_id`, and the spans of
    the stage bodies, by customer, from the runs' outputs."""
    query = select(jobs.c.started_at, jobs.c.completed_at).where(
        jobs.c.workflow_id == workflow_id, jobs.c.status == "COMPLETED"
    )
    outputs = select(runs.c.input, runs.c.output).where(runs.c.workflow_id == workflow_id)
    bodies: dict[str, list[tuple[float, float]]] = {}
    async with storage.engine.connect() as conn:
        leases = [(r[0], r[1]) for r in await conn.execute(query)]
        for given, output in await conn.execute(outputs):
            bodies.setdefault(given["customer"], []).append((output["began"], output["ended"]))
    return leases, bodies


def most_at_once(spans: Sequence[tuple[float, float]]) -> int:
    """The most spans that overlapped (an end sorts before a start at the same instant)."""
    edges = sorted(edge for began, ended in spans for edge in ((began, 1), (ended, -1)))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def most_in_window(starts: Sequence[datetime], window: timedelta) -> int:
    """The most starts within any window: (t − window, t], as the rate limit counts."""
    ordered = sorted(starts)
    most = first = 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - window:
            first += 1
        most = max(most, last - first + 1)
    return most


# -- 1. round trips --------------------------------------------------------------------


async def round_trips(url: str, runs: int, settings: Settings) -> dict[str, Any]:
    """Statements per job leased in process, `dequeue(1)` and `dequeue(8)`, per limit;
    and the statements of a dequeue that finds nothing, or finds only jobs whose limit
    is full."""
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows(settings))
    rows = []
    idle = 0
    try:
        for workflow_id in ("free", "bounded", "metered"):
            for batch in (1, 8):
                await create_and_claim(kernel, workflow_id, runs, tag=str(batch))
                dequeue_sent = total = done = 0
                while True:
                    with direct.watching(storage.engine) as sent:
                        leased = await storage.jobs.dequeue(batch)
                        in_dequeue = len(sent)
                        for job in leased:
                            await process_job(kernel, job)
                    if not leased:  # the dequeue that found nothing: an idle poll
                        idle = in_dequeue
                        break
                    dequeue_sent += in_dequeue
                    total += len(sent)
                    done += len(leased)
                assert done == runs, f"{workflow_id}: {done} of {runs} jobs leased"
                rows.append(
                    {
                        "workflow": workflow_id,
                        "batch": batch,
                        "jobs": done,
                        "dequeue_per_job": dequeue_sent / done,
                        "per_job": total / done,
                    }
                )
        # A poll that finds jobs waiting, all under a full concurrency limit.
        await create_and_claim(kernel, "single", 2)
        held = await storage.jobs.dequeue(8)
        with direct.watching(storage.engine) as sent:
            assert not await storage.jobs.dequeue(8)
        full = len(sent)
        assert len(held) == 1 and len(await _drain(storage, kernel, held)) == 2
    finally:
        await storage.close()
    return {"rows": rows, "idle_poll": idle, "full_poll": full}


async def _drain(storage: SqlStorage, kernel: Kernel, held: list[Any]) -> list[Any]:
    """Finish the held jobs, then whatever is left."""
    done = list(held)
    for job in held:
        await process_job(kernel, job)
    while leased := await storage.jobs.dequeue(8):
        for job in leased:
            await process_job(kernel, job)
        done += leased
    return done


# -- 2. and 3. workers at the limit -------------------------------------------------------


async def _prepare(url: str, workflow_id: str, count: int, settings: Settings) -> None:
    storage = open_storage(url)
    try:
        await create_and_claim(make_kernel(storage, workflows(settings)), workflow_id, count)
    finally:
        await storage.close()


async def _measure(
    url: str, workflow_id: str, count: int, timeout: float
) -> tuple[list[tuple[datetime, datetime]], dict[str, list[tuple[float, float]]]]:
    storage = open_storage(url)
    try:
        await wait_for(storage, workflow_id, count, timeout)
        return await job_times(storage, workflow_id)
    finally:
        await storage.close()


def fleet_case(
    url: str, workflow_id: str, count: int, workers: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Queue `count` jobs of `workflow_id`, start the workers, let them drain the queue."""
    settings: Settings = args.settings
    asyncio.run(_prepare(url, workflow_id, count, settings))
    procs = start_workers(url, workers, args.slots, args.poll_interval, settings)
    try:
        leases, bodies = asyncio.run(_measure(url, workflow_id, count, args.timeout))
    finally:
        exits = [json.loads(line) for line in stop_all(procs)]
    assert len(leases) == count, f"{workflow_id}: {len(leases)} of {count} jobs completed"
    first = min(leased for leased, _ in leases)
    last = max(ended for _, ended in leases)
    span_s = (last - first).total_seconds()
    statements = sum(e.get("statements", 0) for e in exits)
    every = [span for spans in bodies.values() for span in spans]
    row: dict[str, Any] = {
        "workflow": workflow_id,
        "workers": workers,
        "jobs": count,
        "span_s": round(span_s, 2),
        "jobs_per_s": count / span_s,
        "steady_jobs_per_s": _steady(sorted(ended for _, ended in leases)),
        "most_running": most_at_once(every),
        "most_running_per_customer": max(most_at_once(spans) for spans in bodies.values()),
        "statements_per_job": statements / count,
    }
    if workflow_id == "paced":
        starts = sorted(leased for leased, _ in leases)
        window = timedelta(milliseconds=settings.window_ms)
        row["starts_per_s"] = (count - settings.rate) / (starts[-1] - starts[0]).total_seconds()
        row["most_in_window"] = most_in_window(starts, window)
    return row


def _steady(completions: list[datetime]) -> float:
    """Jobs/s over the middle 80 % of completions: without the workers' first leases (new
    connections, first statements) and the last few jobs."""
    tenth = len(completions) // 10
    middle = completions[tenth : len(completions) - tenth]
    return (len(middle) - 1) / (middle[-1] - middle[0]).total_seconds()


def ideal(workflow_id: str, args: argparse.Namespace, workers: int) -> float | None:
    """Jobs/s if every slot the limit allows were always busy with a stage of SLEEP_MS."""
    settings: Settings = args.settings
    stage_s = settings.sleep_ms / 1000
    slots: int = workers * args.slots
    if workflow_id == "slow_free":
        return slots / stage_s
    if workflow_id == "slow_bounded":
        return min(slots, settings.concurrency) / stage_s
    if workflow_id == "slow_per_customer":
        return min(slots, settings.concurrency * CUSTOMERS) / stage_s
    if workflow_id == "paced":
        return settings.rate * 1000 / settings.window_ms
    return None


# -- report ------------------------------------------------------------------------------


def run_database(database: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    asyncio.run(_migrate(url))
    began = time.monotonic()
    trips = None
    if "round-trips" in args.case:
        trips = asyncio.run(round_trips(url, args.runs, args.settings))
        print(json.dumps({"database": database} | trips), file=sys.stderr, flush=True)
    fleet = []
    cases = [
        ("none", "slow_free", args.jobs, 4),
        ("concurrency", "slow_bounded", args.jobs, 4),
        ("per-customer", "slow_per_customer", args.jobs, 4),
        ("rate", "paced", args.settings.rate * args.rate_seconds, 2),
    ]
    for case, workflow_id, count, workers in cases:
        if case not in args.case:
            continue
        row = fleet_case(url, workflow_id, count, workers, args)
        row["ideal_jobs_per_s"] = ideal(workflow_id, args, workers)
        fleet.append(row)
        print(json.dumps({"database": database} | row), file=sys.stderr, flush=True)
    return {
        "database": database,
        "round_trips": trips,
        "fleet": fleet,
        "case_s": round(time.monotonic() - began, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", choices=("sqlite", "postgres"), action="append", help="only these"
    )
    parser.add_argument("--runs", type=int, default=80, help="runs per round-trip count")
    parser.add_argument("--jobs", type=int, default=200, help="runs per throughput case")
    parser.add_argument("--rate-seconds", type=int, default=20, help="length of the rate case")
    parser.add_argument("--slots", type=int, default=8, help="job slots per worker")
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="workers' job poll (wfc worker's: 1 s)"
    )
    parser.add_argument("--sleep-ms", type=int, default=20, help="the slow stages' duration")
    parser.add_argument("--concurrency", type=int, default=4, help="the slow stages' limit")
    parser.add_argument("--rate", type=int, default=10, help="starts per window of `paced`")
    parser.add_argument("--window-ms", type=int, default=1000, help="the rate's window")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a case may take")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--case", choices=CASES, action="append", help="only these (default: all of them)"
    )
    args = parser.parse_args()
    args.case = args.case or CASES
    args.settings = Settings(args.sleep_ms, args.concurrency, args.rate, args.window_ms)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for database in args.database or ("sqlite", "postgres"):
            if database == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'limits.db'}"
                results.append(run_database(database, url, args))
            else:
                with postgres(DATABASE) as url:
                    results.append(run_database(database, url, args))
    if args.out is not None:
        shown = {k: v for k, v in vars(args).items() if k not in ("settings", "out")}
        args.out.write_text(json.dumps({"args": shown, "results": results}, indent=2))
    print_tables(args, results)


def print_tables(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    if any(result["round_trips"] is None for result in results):
        print_fleet(args, results)
        return
    print(f"\nround trips: {args.runs} runs of a 1-stage workflow, leased in process")
    print(
        "| db | limit | statements per job: dequeue(1) | + execute, complete "
        "| dequeue(8) | + execute, complete |"
    )
    print("|" + "---|" * 6)
    for result in results:
        trips = {(r["workflow"], r["batch"]): r for r in result["round_trips"]["rows"]}
        for workflow_id in ("free", "bounded", "metered"):
            one, eight = trips[(workflow_id, 1)], trips[(workflow_id, 8)]
            print(
                f"| {result['database']} | {_limit(workflow_id)} "
                f"| {one['dequeue_per_job']:.2f} | {one['per_job']:.2f} "
                f"| {eight['dequeue_per_job']:.2f} | {eight['per_job']:.2f} |"
            )
    for result in results:
        trips = result["round_trips"]
        print(
            f"{result['database']}: a dequeue that finds nothing sends {trips['idle_poll']} "
            f"statements; one that finds only jobs under a full limit, {trips['full_poll']}"
        )
    print_fleet(args, results)


def print_fleet(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(
        f"\nworkers at the limit: {args.slots} slots each, poll {args.poll_interval:g} s, "
        f"stage {args.sleep_ms} ms"
    )
    print(
        "| db | limit | workers | jobs | jobs/s: all / middle 80 % | ideal "
        "| most at once: all / one customer | statements per job "
        "| rate: starts/s, most in a window |"
    )
    print("|" + "---|" * 9)
    for result in results:
        for r in result["fleet"]:
            paced = "–"
            if "starts_per_s" in r:
                paced = f"{r['starts_per_s']:.1f}/s, {r['most_in_window']}"
            print(
                f"| {result['database']} | {_limit(r['workflow'], args)} | {r['workers']} "
                f"| {r['jobs']} | {r['jobs_per_s']:.0f} / {r['steady_jobs_per_s']:.0f} "
                f"| {r['ideal_jobs_per_s']:.0f} "
                f"| {_at_once(r)} | {r['statements_per_job']:.1f} | {paced} |"
            )


def _at_once(row: dict[str, Any]) -> str:
    if row["workflow"] == "paced":  # its body is instant: it records no span
        return "–"
    return f"{row['most_running']} / {row['most_running_per_customer']}"


def _limit(workflow_id: str, args: argparse.Namespace | None = None) -> str:
    settings = args.settings if args is not None else Settings()
    return {
        "free": "none",
        "bounded": "concurrency 1000",
        "metered": "rate 100000 per minute",
        "slow_free": "none",
        "slow_bounded": f"concurrency {settings.concurrency}",
        "slow_per_customer": f"concurrency {settings.concurrency} per input.customer",
        "paced": f"rate {settings.rate} per {settings.window_ms} ms",
    }[workflow_id]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        url, worker_id, slots, poll, given = sys.argv[2:7]
        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # the loop `wfc worker` uses
            runner.run(
                serve(url, worker_id, int(slots), float(poll), Settings(**json.loads(given)))
            )
    else:
        main()
