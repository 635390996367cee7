"""Mapped stages: one run whose stage maps over 10,000 items, wfc vs DBOS Transact.

Run: `.venv/bin/python benchmarks/map_items.py` (PostgreSQL at
`WFC_BENCH_DATABASE_URL`, default the local server; `--quick` maps 1,000 items,
`--items N` any number; `--no-dbos` skips the comparison, which otherwise
installs `dbos` into `benchmarks/.dbos-venv` on first use). Reported, never asserted.

The workflow `map`: its input is a list of ITEMS objects; the stage `touch` maps
over it (`map_over="input.items"`, `at_most` AT_MOST items of the run queued at
once, 64 by default), each item a trivial body returning a tiny output; the
stage `total` then reads the gathered list (`ctx.dependency_list`) and sums it,
so the gather is included. For each database (SQLite file, PostgreSQL) and
worker count (1, 4 processes of 8 job slots, as `benchmarks/runtime.py`), on
a fresh database, one run is created and waited for:

- items/s = ITEMS / (the mapped stage's completion − the run's creation), from
  the database's own timestamps (the run's end, after `total`, is shown too);
- SQL statements per item: every statement the workers sent over their whole
  lives (BEGIN and COMMIT included, counted as `benchmarks/runtime.py` counts
  them, with `direct.watching` in each worker), divided by ITEMS; on
  PostgreSQL each is one round trip; the most frequent statements are printed;
- peak RSS of each worker process (the largest is reported);
- CPU per item (`cpu_meter`, from /proc), from the run's creation to its end:
  the whole machine's, the workers', PostgreSQL's and the driver's.

DBOS runs the same shape on the same PostgreSQL server (`dbos_map.py`): a
parent workflow enqueues one child workflow per item on a queue that runs at
most AT_MOST at once (AT_MOST / workers per process: the queue's
`worker_concurrency`), waits for their results and sums them in a step;
items/s = ITEMS / (the last child's completion − the parent's creation), from
its `workflow_status` rows; with 1 and 4 DBOS worker processes.

`--source stage` makes the list the output of a first stage, `split`, instead
of the run's input (the run's input is then the count alone), for wfc.
`--dbos-client` adds DBOS's queue alone: the driver's DBOSClient enqueues the
children itself, with no parent and no gather (the driver's CPU is then that
client process's).

Worker mode (started by the driver): `map_items.py worker URL ID SLOTS AT_MOST SOURCE`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cpu_meter  # noqa: E402
from runtime import _migrate, dbos_python, postgres, start, stop_all  # noqa: E402

from wfc.runtime import WorkflowBuilder, define_stage  # noqa: E402
from wfc.runtime.adapters.sql import PoolOptions, direct, open_storage  # noqa: E402
from wfc.runtime.commands import RunCreate  # noqa: E402
from wfc.runtime.hosts import WorkerHost, make_kernel  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402
from wfc.runtime.records import TERMINAL, Status  # noqa: E402
from wfc.runtime.registry import WorkflowMap  # noqa: E402

WORKFLOW = "map"
_ENDED = {status.value for status in TERMINAL}


class Item(BaseModel):
    n: int


class Items(BaseModel):
    items: list[Item]


class Total(BaseModel):
    count: int
    total: int


class Count(BaseModel):
    count: int


async def touch(ctx: Any) -> Item:
    return Item(n=ctx.input.n + 1)


async def split(ctx: Any) -> Items:
    return Items(items=[Item(n=n) for n in range(ctx.input.count)])


async def add_up(ctx: Any) -> Total:
    results = ctx.dependency_list("touch", Item)
    return Total(count=len(results), total=sum(r.n for r in results))


def workflows(at_most: int, source: str = "input") -> WorkflowMap:
    """The benchmark's one workflow; `at_most` is part of its plan, so the driver and the
    workers must build it with the same value. With `source="stage"` the list is not the
    run's input but the output of a first stage, `split`, given the count."""
    builder = WorkflowBuilder(WORKFLOW, "Map over items", input=Items)
    over = "input.items"
    if source == "stage":
        builder = WorkflowBuilder(WORKFLOW, "Map over items", input=Count)
        builder = builder.pipe(define_stage(id="split", input=Count, output=Items, execute=split))
        over = "split.items"
    mapped = (
        builder.pipe(
            define_stage(
                id="touch",
                input=Item,
                output=Item,
                execute=touch,
                map_over=over,
                at_most=at_most,
            )
        )
        .pipe(define_stage(id="total", output=Total, execute=add_up, needs=["touch"]))
        .build()
    )
    return WorkflowMap([mapped])


# -- a worker process ------------------------------------------------------------------


async def serve(url: str, worker_id: str, concurrency: int, at_most: int, source: str) -> None:
    """What `bench_worker.py` does, over the map workflow, counting the statements it
    sends; prints `ready`, and on SIGTERM one JSON line: stats, peak RSS, statements."""
    storage = open_storage(url, worker_id=worker_id, pool=PoolOptions.for_slots(concurrency))
    await storage.prepare()
    host = WorkerHost(
        make_kernel(storage, workflows(at_most, source)),
        worker_id=worker_id,
        concurrency=concurrency,
        job_poll_interval=timedelta(milliseconds=200 if storage.wakeups is None else 1000),
        wakeups=storage.wakeups,
    )
    ready = asyncio.get_running_loop().call_later(0.2, lambda: print("ready", flush=True))
    with direct.watching(storage.engine) as sent:
        stats = await host.serve()
    ready.cancel()
    await storage.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = asdict(stats) | {
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "statements": len(sent),
        "by_statement": Counter(sent).most_common(40),
    }
    print(json.dumps(report), flush=True)


# -- wfc -------------------------------------------------------------------------------


def _seconds(delta: Any) -> float:
    return float(delta.total_seconds())


async def _wait_for_end(storage: Any, run_id: str, timeout: float) -> None:
    """Poll the run's status, one cheap statement every 50 ms, until it has ended."""
    status = text("SELECT status FROM runs WHERE id = :id")
    deadline = time.monotonic() + timeout
    async with storage.engine.connect() as conn:
        while True:
            now = (await conn.execute(status, {"id": run_id})).scalar_one()
            await conn.rollback()
            if now in _ENDED:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the run did not end in {timeout:.0f} s")
            await asyncio.sleep(0.05)


async def drive_wfc(url: str, args: argparse.Namespace, pids: list[int]) -> dict[str, Any]:
    """Create the one run, wait for its end, and time it from the database's rows."""
    items = args.items
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows(args.at_most, args.source))
    run_input: dict[str, Any] = {"count": items}
    if args.source == "input":
        run_input = {"items": [{"n": n} for n in range(items)]}
    try:
        before = cpu_meter.sample(pids) if cpu_meter.available() else None
        created = await kernel.dispatch(
            RunCreate(idempotency_key="map", workflow_id=WORKFLOW, input=run_input)
        )
        await _wait_for_end(storage, created.workflow_run_id, args.timeout)
        cpu = cpu_meter.per_run(before, cpu_meter.sample(pids), items) if before else None
        found = await storage.persistence.run_with_stages(created.workflow_run_id)
        assert found is not None
        run, rows = found
        assert run.status is Status.COMPLETED, f"the run ended {run.status}: {run.error}"
        assert run.output == {"count": items, "total": items * (items + 1) // 2}, run.output
        stage = {row.stage_id: row for row in rows}["touch"]
        assert stage.completed_at is not None and stage.started_at is not None
        assert run.completed_at is not None
        mapped = _seconds(stage.completed_at - run.created_at)
        return {
            "items_per_s": items / mapped,
            "map_s": mapped,
            "opened_after_ms": 1000 * _seconds(stage.started_at - run.created_at),
            "run_s": _seconds(run.completed_at - run.created_at),
        } | ({"cpu_ms_per_item": cpu} if cpu else {})
    finally:
        await storage.close()


def wfc_case(url: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start the worker processes, drive the run, stop them and add up what they report."""
    script = str(Path(__file__).resolve())
    slots, at_most = str(args.concurrency), str(args.at_most)
    procs = [
        start([sys.executable, script, "worker", url, f"w{i}", slots, at_most, args.source])
        for i in range(workers)
    ]
    try:
        result = asyncio.run(drive_wfc(url, args, [p.pid for p in procs]))
    finally:
        exits = [json.loads(line) for line in stop_all(procs)]
    statements: Counter[str] = Counter()
    for e in exits:
        statements.update(dict(e.get("by_statement", [])))
    total = sum(e.get("statements", 0) for e in exits)
    return result | {
        "peak_rss_mb": max(e.get("peak_rss_mb", 0.0) for e in exits),
        "statements_per_item": total / args.items,
        "top_statements": [
            [round(n / args.items, 3), _shorten(sql)] for sql, n in statements.most_common(12)
        ],
    }


# -- DBOS ------------------------------------------------------------------------------


async def dbos_times(url: str, parent: str | None, items: int) -> dict[str, float]:
    """From DBOS's `workflow_status` rows (epoch milliseconds): the parent's creation and
    end, and its children's last enqueue and last completion; without a parent (the
    children enqueued by the client), the first child's creation stands for the run's."""
    children = "parent_workflow_id = :id" if parent else "queue_name = 'items'"
    children_times = text(
        "SELECT count(*), min(created_at), max(coalesce(completed_at, updated_at)), "
        f"max(created_at) FROM dbos.workflow_status WHERE {children} AND status = 'SUCCESS'"
    )
    parent_times = text(
        "SELECT created_at, coalesce(completed_at, updated_at) "
        "FROM dbos.workflow_status WHERE workflow_uuid = :id"
    )
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(children_times, {"id": parent})).one()
            count, first_enqueued, last_done, last_enqueued = row
            created, ended = first_enqueued, last_done
            if parent:
                created, ended = (await conn.execute(parent_times, {"id": parent})).one()
    finally:
        await engine.dispose()
    assert count == items, f"{count} of {items} DBOS children succeeded"
    mapped = (last_done - created) / 1000
    return {
        "items_per_s": items / mapped,
        "map_s": mapped,
        "enqueued_s": (last_enqueued - created) / 1000,
        "run_s": (ended - created) / 1000,
    }


_CPU = ("ru_utime", "ru_stime")


def _vm_hwm_mb(pid: int) -> float:
    """A live process's peak RSS, from /proc (DBOS workers are killed, so cannot say)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dbos_case(
    url: str, workers: int, args: argparse.Namespace, *, client: bool = False
) -> dict[str, Any]:
    """DBOS's map: the parent workflow, or with `client` the children enqueued by the
    driver (DBOS's queue alone)."""
    python = str(dbos_python())
    script = str(HERE / "dbos_map.py")
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    procs = [
        start([python, script, "worker", plain, f"d{i}", str(args.at_most), str(workers)])
        for i in range(workers)
    ]
    pids = [p.pid for p in procs]
    drive = [python, script, "drive", plain, str(args.items)]
    try:
        before = cpu_meter.sample(pids) if cpu_meter.available() else None
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [*drive, *(["--step"] if args.dbos_step else []), *(["--client"] if client else [])],
            capture_output=True,
            text=True,
            check=True,
            timeout=args.timeout,
        ).stdout
        cpu = cpu_meter.per_run(before, cpu_meter.sample(pids), args.items) if before else None
        if cpu is not None:  # the driver here is DBOS's client, a process of its own
            client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            spent = sum(getattr(client_after, f) - getattr(client_before, f) for f in _CPU)
            cpu["driver"] = round(1000 * spent / args.items, 2)
        rss = max(_vm_hwm_mb(pid) for pid in pids)
    finally:
        for process in procs:
            process.kill()
            process.wait()
    done = json.loads(out.strip().splitlines()[-1])
    assert done["ok"], "DBOS's total is wrong"
    result = asyncio.run(dbos_times(url, done["workflow_id"], args.items))
    return result | {"peak_rss_mb": rss} | ({"cpu_ms_per_item": cpu} if cpu else {})


# -- report ------------------------------------------------------------------------------


def run_case(
    engine: str, database: str, workers: int, tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """One case, on a fresh database of its own."""
    name = f"{engine.replace('-', '_')}_map_{os.getpid()}_{workers}"
    if engine.startswith("dbos"):
        with postgres(name) as url:
            return dbos_case(url, workers, args, client=engine == "dbos-client")
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
        asyncio.run(_migrate(url))
        return wfc_case(url, workers, args)
    with postgres(name) as url:
        asyncio.run(_migrate(url))
        return wfc_case(url, workers, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="items of the one run")
    parser.add_argument("--quick", action="store_true", help="1,000 items, for a smoke test")
    parser.add_argument("--at-most", type=int, default=64, help="items of the run queued at once")
    parser.add_argument("--concurrency", type=int, default=8, help="job slots per wfc worker")
    parser.add_argument(
        "--source",
        choices=("input", "stage"),
        default="input",
        help="the list is the run's input (the default), or the output of a first stage",
    )
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    parser.add_argument(
        "--dbos-step", action="store_true", help="DBOS children run their item in a step"
    )
    parser.add_argument(
        "--dbos-client",
        action="store_true",
        help="also DBOS's queue alone: the children enqueued by a client, no parent or gather",
    )
    parser.add_argument(
        "--database", choices=("sqlite", "postgres"), action="append", help="only these"
    )
    parser.add_argument("--workers", type=int, action="append", help="only these worker counts")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a case may take")
    parser.add_argument("--out", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.items = 1000
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for database in args.database or ("sqlite", "postgres"):
            for workers in args.workers or (1, 4):
                engines = ["wfc"]
                if database == "postgres" and not args.no_dbos:
                    engines.append("dbos")
                    if args.dbos_client:
                        engines.append("dbos-client")
                for engine in engines:
                    began = time.monotonic()
                    row = run_case(engine, database, workers, Path(tmp), args)
                    row |= {"engine": engine, "database": database, "workers": workers}
                    row["case_s"] = round(time.monotonic() - began, 1)
                    results.append(row)
                    shown = {k: v for k, v in row.items() if k != "top_statements"}
                    print(json.dumps(shown), file=sys.stderr, flush=True)
    settings = {
        "items": args.items,
        "at_most": args.at_most,
        "list_from": "the run's input" if args.source == "input" else "a first stage's output",
        "slots_per_worker": args.concurrency,
        "dbos_children": "workflow with one step" if args.dbos_step else "workflow",
    }
    if args.out is not None:
        args.out.write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    print_table(settings, results)


def _shorten(sql: str) -> str:
    """A statement's text on one line, cut to a length that still says what it does."""
    flat = " ".join(sql.split())
    return flat if len(flat) <= 160 else flat[:157] + "…"


def _cpu(row: dict[str, Any]) -> str:
    cpu = row.get("cpu_ms_per_item")
    if not cpu:
        return "–"
    spent = f"{cpu['workers']:.2f} / "
    if row["database"] == "postgres":
        spent += f"{cpu['postgres']:.2f} / "
    return f"{cpu['machine']:.2f} ms ({spent}{cpu['driver']:.2f})"


def print_table(settings: dict[str, Any], results: list[dict[str, Any]]) -> None:
    print(
        f"{settings['items']} items from {settings['list_from']}, at_most {settings['at_most']}, "
        f"{settings['slots_per_worker']} slots per wfc worker; DBOS children: "
        f"{settings['dbos_children']}"
    )
    print(
        "| engine | db | workers | items/s | map done | run done | statements per item "
        "| worker peak RSS | CPU per item: machine (workers / PostgreSQL / driver) |"
    )
    print("|" + "---|" * 9)
    for r in results:
        statements = f"{r['statements_per_item']:.1f}" if "statements_per_item" in r else "–"
        print(
            f"| {r['engine']} | {r['database']} | {r['workers']} | {r['items_per_s']:.0f} "
            f"| {r['map_s']:.1f} s | {r['run_s']:.1f} s | {statements} "
            f"| {r['peak_rss_mb']:.0f} MB | {_cpu(r)} |"
        )
    for workers in (1, 4):
        ours = [
            r
            for r in results
            if r["engine"] == "wfc" and r["database"] == "postgres" and r["workers"] == workers
        ]
        for engine in ("dbos", "dbos-client"):
            theirs = [r for r in results if r["engine"] == engine and r["workers"] == workers]
            if ours and theirs:
                ratio = ours[0]["items_per_s"] / theirs[0]["items_per_s"]
                print(f"wfc/{engine} items/s, {workers} worker(s), PostgreSQL: {ratio:.2f}×")
    for r in results:
        if r["engine"] == "wfc":
            print(
                f"\nmost frequent statements per item, {r['database']}, {r['workers']} worker(s):"
            )
            for per_item, sql in r["top_statements"]:
                print(f"  {per_item:6.3f}  {sql}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # the loop `wfc worker` uses
            url, worker_id, slots, at_most, source = sys.argv[2:7]
            runner.run(serve(url, worker_id, int(slots), int(at_most), source))
    else:
        main()
