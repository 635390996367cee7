"""Runtime benchmark: runs/sec, run latency and stage→next-stage latency, wfc vs DBOS Transact.

Run: `.venv/bin/python benchmarks/runtime.py` (PostgreSQL at
`WFC_BENCH_DATABASE_URL`, default the local server; `--no-dbos` skips the
comparison, which otherwise installs `dbos` into `benchmarks/.dbos-venv` on
first use). Reported, never asserted.

For each database (SQLite file, PostgreSQL), worker count (1, 4 processes)
and shape (`seq3`: a → b → c; `fan`: a → [b1..b4] → c, trivial stages):
- burst: RUNS runs created at once; runs/sec = RUNS / (last completion − first creation),
  from the database's own timestamps. Two bursts run one after the other on the same
  workers: the first meets new connections, statements and server caches, the second
  is the figure reported (the first one's is shown beside it);
- one at a time: ISOLATED runs, each created after the previous finished:
  end-to-end latency (creation → completion) and stage→next-stage latency (a
  group's last completion → the next group's first start), p50 and p99;
- peak RSS of each worker process, and SQL statements per stage execution, for a job
  dequeued and for one handed to the worker that ran the stage before;
- CPU per run of the burst (`cpu_meter`, from /proc): the whole machine's, and the
  workers', PostgreSQL's and the driver's, which move less than runs/sec between runs.
DBOS runs the same shapes on the same PostgreSQL server (its queue polling
set to 50 ms; timestamps from its own workflow_status rows).

With `--repeat N` each case runs N times, each on a fresh database, and the
run with the median runs/sec is reported with the range of all N: on a
shared machine one run of a case can be a fifth off.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cpu_meter  # noqa: E402
import floor  # noqa: E402
from shapes import workflows  # noqa: E402

from wfc.runtime.adapters.sql import SqlStorage, direct, migrate, open_storage  # noqa: E402
from wfc.runtime.commands import RunClaimPending, RunCreate  # noqa: E402
from wfc.runtime.handoff import handing_off_to  # noqa: E402
from wfc.runtime.hosts import make_kernel, process_job  # noqa: E402
from wfc.runtime.kernel import Kernel  # noqa: E402
from wfc.runtime.records import TERMINAL, StageRecord, Status  # noqa: E402
from wfc.testing import SlotTaker  # noqa: E402

ADMIN_URL = os.environ.get(
    "WFC_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DBOS_VENV = HERE / ".dbos-venv"
INPUT = {"n": 0}


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def ms(delta: Any) -> float:
    return float(delta.total_seconds() * 1000)


# -- databases -------------------------------------------------------------------------


async def _admin(sql: str) -> None:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


@contextmanager
def postgres(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database; its URL (asyncpg driver)."""
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _migrate(url: str) -> None:
    engine = create_async_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()


# -- wfc -------------------------------------------------------------------------------


def start(command: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        process.kill()
        raise RuntimeError(f"{command[1]} did not start: {line!r}")
    return process


def stop_all(processes: list[subprocess.Popen[str]]) -> list[str]:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    outputs = [process.communicate(timeout=60)[0] for process in processes]
    return [out.strip().splitlines()[-1] if out.strip() else "{}" for out in outputs]


_FINISHED = text("SELECT count(*) FROM runs WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')")


async def _finished(storage: SqlStorage) -> int:
    """How many runs have finished: one cheap count, so polling does not load the database."""
    async with storage.engine.connect() as conn:
        return int((await conn.execute(_FINISHED)).scalar_one())


async def _all_finished(storage: SqlStorage, count: int) -> None:
    while await _finished(storage) < count:
        await asyncio.sleep(0.05)


def stage_gaps(stages: list[StageRecord]) -> list[float]:
    """For each pair of consecutive groups: next group's first start − this group's last end."""
    groups: dict[int, list[StageRecord]] = defaultdict(list)
    for stage in stages:
        groups[stage.execution_group].append(stage)
    order = sorted(groups)
    gaps = []
    for before, after in itertools.pairwise(order):
        ended = max(s.completed_at for s in groups[before] if s.completed_at)
        began = min(s.started_at for s in groups[after] if s.started_at)
        gaps.append(ms(began - ended))
    return gaps


async def _burst(
    kernel: Kernel, storage: SqlStorage, shape: str, runs: int, tag: str, worker_pids: list[int]
) -> tuple[float, dict[str, float] | None]:
    """Create `runs` runs at once and wait for them: runs/sec, and CPU per run if measured."""
    done_before = await _finished(storage)
    before = cpu_meter.sample(worker_pids) if cpu_meter.available() else None
    ids = [
        (
            await kernel.dispatch(
                RunCreate(idempotency_key=f"{tag}-{shape}-{n}", workflow_id=shape, input=INPUT)
            )
        ).workflow_run_id
        for n in range(runs)
    ]
    await _all_finished(storage, done_before + len(ids))
    cpu = None
    if before is not None:  # before the runs are read back: that is not the engine's work
        cpu = cpu_meter.per_run(before, cpu_meter.sample(worker_pids), runs)
    burst: list[Any] = [await storage.persistence.get_run(r) for r in ids]
    assert all(r.status is Status.COMPLETED for r in burst), "a benchmark run failed"
    span = max(r.completed_at for r in burst) - min(r.created_at for r in burst)
    return runs / span.total_seconds(), cpu


async def drive_wfc(
    url: str, shape: str, runs: int, isolated: int, worker_pids: list[int]
) -> dict[str, Any]:
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())
    try:
        # The first burst meets workers whose connections, prepared statements and server
        # caches are all new; the second one measures them as they run for the rest of
        # their lives. Both are reported.
        first, _ = await _burst(kernel, storage, shape, runs, "first", worker_pids)
        rate, cpu = await _burst(kernel, storage, shape, runs, "burst", worker_pids)
        latencies, gaps = [], []
        for n in range(isolated):
            created = await kernel.dispatch(
                RunCreate(idempotency_key=f"one-{shape}-{n}", workflow_id=shape, input=INPUT)
            )
            while True:
                run = await storage.persistence.get_run(created.workflow_run_id)
                if run is not None and run.status in TERMINAL:
                    break
                await asyncio.sleep(0.005)
            assert run.completed_at is not None
            latencies.append(ms(run.completed_at - run.created_at))
            gaps += stage_gaps(await storage.persistence.stages_of_run(run.id))
        return {
            "runs_per_s": rate,
            "first_burst_runs_per_s": first,
            "latency_p50_ms": pct(latencies, 50),
            "latency_p99_ms": pct(latencies, 99),
            "stage_gap_p50_ms": pct(gaps, 50),
            "stage_gap_p99_ms": pct(gaps, 99),
        } | ({"cpu_ms_per_run": cpu} if cpu else {})
    finally:
        await storage.close()


def wfc_case(
    url: str, shape: str, workers: int, runs: int, isolated: int, concurrency: int
) -> dict[str, Any]:
    procs = [
        start([sys.executable, str(HERE / "bench_worker.py"), url, f"w{i}", str(concurrency)])
        for i in range(workers)
    ]
    try:
        result = asyncio.run(drive_wfc(url, shape, runs, isolated, [p.pid for p in procs]))
    finally:
        exits = [json.loads(line) for line in stop_all(procs)]
    result["peak_rss_mb"] = max(e.get("peak_rss_mb", 0.0) for e in exits)
    return result


async def statements_per_stage(url: str, shape: str = "seq3") -> dict[str, float]:
    """Database round trips per stage execution of a `shape` run, statements with BEGIN/COMMIT
    (explicit on the job's pinned connection) among them, two ways: each job `dequeued`
    (dequeue → execute → transition → complete), and each next job `handed` to the worker
    that finished the stage before, which starts it in the transition."""
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())

    async def one_run(key: str, taker: SlotTaker | None) -> list[int]:
        """The statements of each stage execution of one run, in order."""
        created = await kernel.dispatch(
            RunCreate(idempotency_key=key, workflow_id=shape, input=INPUT)
        )
        await kernel.dispatch(RunClaimPending(worker_id="count"))
        per_stage = []
        while True:
            with direct.watching(storage.engine) as sent:
                leased = (taker.taken if taker else []) or await storage.jobs.dequeue(1)
                if not leased:
                    break
                if taker is not None:
                    taker.taken = []
                    with handing_off_to(taker):
                        await process_job(kernel, leased[0])
                else:
                    await process_job(kernel, leased[0])
            per_stage.append(len(sent))
        run = await storage.persistence.get_run(created.workflow_run_id)
        assert run is not None and run.status is Status.COMPLETED
        return per_stage

    try:
        dequeued = await one_run(f"count-{shape}-dequeued", None)
        handed = (await one_run(f"count-{shape}-handed", SlotTaker(1)))[1:]  # the first is dequeued
        return {"dequeued": mean(dequeued), "handed": mean(handed)}
    finally:
        await storage.close()


# -- DBOS ------------------------------------------------------------------------------


def dbos_python() -> Path:
    python = DBOS_VENV / "bin" / "python"
    if not python.exists():
        print("installing dbos into benchmarks/.dbos-venv …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(DBOS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "dbos"], check=True)
    return python


def dbos_case(url: str, shape: str, workers: int, runs: int, isolated: int) -> dict[str, Any]:
    python = str(dbos_python())
    script = str(HERE / "dbos_shapes.py")
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    procs = [start([python, script, "worker", plain, f"d{i}"]) for i in range(workers)]
    try:
        out = subprocess.run(
            [python, script, "drive", plain, shape, str(runs), str(isolated)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    finally:
        for process in procs:
            process.kill()
            process.wait()
    return dict(json.loads(out.strip().splitlines()[-1]))


# -- report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One row of the table: an engine, a database, a worker count and a shape."""

    engine: str
    database: str
    workers: int
    shape: str


def run_case(case: Case, n: int, tmp: Path, stamp: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run of a case, on a fresh database of its own."""
    name = f"{case.engine}_bench_{stamp}_{case.workers}_{case.shape}_{n}"
    if case.engine == "dbos":
        with postgres(name) as url:
            return dbos_case(url, case.shape, case.workers, args.runs, args.isolated)
    settings = (case.shape, case.workers, args.runs, args.isolated, args.concurrency)
    if case.database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
        asyncio.run(_migrate(url))
        return wfc_case(url, *settings)
    with postgres(name) as url:
        asyncio.run(_migrate(url))
        return wfc_case(url, *settings)


def median_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with the median runs/sec, with the range of all of them when there are several."""
    ordered = sorted(rows, key=lambda r: r["runs_per_s"])
    row = dict(ordered[(len(ordered) - 1) // 2])
    if len(ordered) > 1:
        row["runs_per_s_range"] = [ordered[0]["runs_per_s"], ordered[-1]["runs_per_s"]]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per burst")
    parser.add_argument("--isolated", type=int, default=30, help="runs made one at a time")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="job slots per wfc worker process"
    )
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each case; the median is reported"
    )
    parser.add_argument(
        "--out", type=Path, help="results JSON (default results.json, scaling_results.json)"
    )
    parser.add_argument(
        "--database",
        choices=("memory", "sqlite", "postgres"),
        action="append",
        help="only these (memory: the scaling table only)",
    )
    parser.add_argument("--workers", type=int, action="append", help="only these worker counts")
    parser.add_argument("--shape", choices=("seq3", "fan"), action="append", help="only these")
    parser.add_argument("--no-floor", action="store_true", help="skip the hand-written floor")
    import scaling  # imports this module: here, not at the top

    scaling.add_arguments(parser)
    args = parser.parse_args()
    if args.scaling:
        scaling_table(args, args.out or HERE / "scaling_results.json")
        return
    args.out = args.out or HERE / "results.json"
    results: list[dict[str, Any]] = []
    stamp = str(os.getpid())
    with tempfile.TemporaryDirectory() as tmp:
        for database in [d for d in args.database or ("sqlite", "postgres") if d != "memory"]:
            for workers in args.workers or (1, 4):
                for shape in args.shape or ("seq3", "fan"):
                    engines = ["wfc"]
                    if database == "postgres" and not args.no_dbos:
                        engines.append("dbos")
                    for engine in engines:
                        case = Case(engine, database, workers, shape)
                        runs = [
                            run_case(case, n, Path(tmp), stamp, args) for n in range(args.repeat)
                        ]
                        row = median_of(runs) | asdict(case)
                        results.append(row)
                        print(json.dumps(row), file=sys.stderr)
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'count.db'}"
        asyncio.run(_migrate(sqlite_url))
        statements = {"sqlite": asyncio.run(statements_per_stage(sqlite_url))}
        with postgres(f"wfc_bench_{stamp}_count") as url:
            asyncio.run(_migrate(url))
            statements["postgres"] = asyncio.run(statements_per_stage(url))
        if not args.no_floor:  # the same run, so the two are read against the same machine
            results += floor.measure(args.shape or ("seq3", "fan"), args.database, Path(tmp))
    args.out.write_text(
        json.dumps({"results": results, "statements_per_stage": statements}, indent=2)
    )
    print_table(results, statements)


def scaling_table(args: argparse.Namespace, out: Path) -> None:
    """The scaling table (`benchmarks/scaling.py`): written to `--out`, printed."""
    import scaling

    with tempfile.TemporaryDirectory() as tmp:
        rows = scaling.measure(args, Path(tmp), str(os.getpid()))
    out.write_text(json.dumps({"scaling": rows}, indent=2))
    scaling.print_table(rows)


def runs_per_s(row: dict[str, Any]) -> str:
    """Runs/sec, with the range over repeats (`--repeat`) when there was more than one."""
    shown = f"{row['runs_per_s']:.0f}"
    if "runs_per_s_range" in row:
        low, high = row["runs_per_s_range"]
        shown += f" ({low:.0f}–{high:.0f})"
    return shown


def cpu_per_run(row: dict[str, Any]) -> str:
    """The burst's CPU per run, where measured (wfc cases on Linux)."""
    cpu = row.get("cpu_ms_per_run")
    if not cpu:
        return "–"
    spent = f"{cpu['workers']:.1f} / "
    if row["database"] == "postgres":
        spent += f"{cpu['postgres']:.1f} / "
    return f"{cpu['machine']:.1f} ms ({spent}{cpu['driver']:.1f})"


def print_table(results: list[dict[str, Any]], statements: dict[str, dict[str, float]]) -> None:
    header = (
        "| engine | db | workers | shape | runs/s | first burst | run p50 | run p99 "
        "| stage→stage p50 | p99 | peak RSS | CPU per run: machine (workers / PostgreSQL / driver) |"
    )
    print(header)
    print("|" + "---|" * 12)
    for r in results:
        if r["engine"].startswith("floor"):
            print(
                f"| {r['engine']} | {r['database']} | 1 | {r['shape']} | {r['runs_per_s']:.0f} "
                f"| – | – | – | – | – | – | {r['cpu_ms_per_run']:.2f} ms (this process) |"
            )
            continue
        gap = (
            f"{r['stage_gap_p50_ms']:.1f} ms | {r['stage_gap_p99_ms']:.1f} ms"
            if "stage_gap_p50_ms" in r
            else "– | –"
        )
        rss = f"{r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else "–"
        print(
            f"| {r['engine']} | {r['database']} | {r['workers']} | {r['shape']} "
            f"| {runs_per_s(r)} | {r['first_burst_runs_per_s']:.0f} "
            f"| {r['latency_p50_ms']:.1f} ms | {r['latency_p99_ms']:.1f} ms "
            f"| {gap} | {rss} | {cpu_per_run(r)} |"
        )
    for shape in ("seq3", "fan"):
        for workers in (1, 4):
            ours = [
                r
                for r in results
                if r["engine"] == "wfc"
                and r["database"] == "postgres"
                and r["shape"] == shape
                and r["workers"] == workers
            ]
            theirs = [
                r
                for r in results
                if r["engine"] == "dbos" and r["shape"] == shape and r["workers"] == workers
            ]
            if ours and theirs:
                ratio = ours[0]["runs_per_s"] / theirs[0]["runs_per_s"]
                print(f"wfc/DBOS runs/s, {shape}, {workers} worker(s), PostgreSQL: {ratio:.2f}×")
    print(
        "SQL statements per stage execution (dequeued / handed to the worker that ran the "
        "stage before): "
        + ", ".join(f"{db} {n['dequeued']:.1f} / {n['handed']:.1f}" for db, n in statements.items())
    )


if __name__ == "__main__":
    main()
