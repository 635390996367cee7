"""Runtime benchmark: runs/sec, run latency and stage→next-stage latency, wfc vs DBOS Transact.

Run: `.venv/bin/python benchmarks/runtime.py` (PostgreSQL at
`WFC_BENCH_DATABASE_URL`, default the local server; `--no-dbos` skips the
comparison, which otherwise installs `dbos` into `benchmarks/.dbos-venv` on
first use). Reported, never asserted. `benchmarks/targets.py` runs the cases
issue 27's targets name and says which are met.

For each database and worker count — the memory adapters in process (as a
user's test suite drives them through `wfc.testing`); SQLite in process (the
host `wfc run` and `run_and_wait` start in the calling process) and with 1
and 4 worker processes; PostgreSQL with 1 and 4 — and each shape (`seq3`:
a → b → c; `fan`: a → [b1..b4] → c, trivial stages):
- burst: RUNS runs created at once; runs/sec = RUNS / (last completion − first creation),
  from the database's own timestamps (wall time for memory). Two bursts run one after
  the other on the same workers: the first meets new connections, statements and
  server caches, the second is the figure reported (the first one's is shown beside it);
- one at a time: ISOLATED runs, each created after the previous finished:
  end-to-end latency (creation → completion) and stage→next-stage latency (a
  group's last completion → the next group's first start), p50 and p99;
- peak RSS of each worker process (of the process for the in-process rows, each
  measured in a fresh one: `embedded.py`), and SQL statements per stage execution,
  for a job dequeued and for one handed to the worker that ran the stage before (in
  process: all the second burst sent, creation and claim included, per stage);
- CPU per run of the burst (`cpu_meter`, from /proc): the whole machine's, and the
  workers', PostgreSQL's and the driver's (the process serving the runs, in process),
  which move less than runs/sec between runs;
- runs/s as a share of the floor (`floor.py`) measured in the same run, on the
  same database (the SQLite floor for the memory adapters).
DBOS runs the same shapes on the same PostgreSQL server (its queue polling
set to 50 ms; timestamps from its own workflow_status rows), and seq3 with one
worker on a SQLite file of its own (`dbos_shapes.py`: timed by the wall clock there).

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cpu_meter  # noqa: E402
import embedded  # noqa: E402
import floor  # noqa: E402
import runtime_report  # noqa: E402
from shapes import INPUT, workflows  # noqa: E402
from statements import statements_per_stage  # noqa: E402

from wfc.runtime.adapters.sql import SqlStorage, direct, migrate, open_storage  # noqa: E402
from wfc.runtime.adapters.sql.engine import autocommit  # noqa: E402
from wfc.runtime.commands import RunCreate  # noqa: E402
from wfc.runtime.hosts import make_kernel  # noqa: E402
from wfc.runtime.kernel import Kernel  # noqa: E402
from wfc.runtime.records import TERMINAL, StageRecord, Status  # noqa: E402

ADMIN_URL = os.environ.get(
    "WFC_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
DBOS_VENV = HERE / ".dbos-venv"


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
    """How many runs have finished: one cheap count, so polling does not load the database
    (no transaction: on SQLite one would take the write lock the workers are taking turns at)."""
    async with autocommit(storage.engine).connect() as conn:
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
    kernel: Kernel,
    storage: SqlStorage,
    shape: str,
    runs: int,
    tag: str,
    worker_pids: list[int],
    *,
    statements: list[str] | None = None,
) -> tuple[float, dict[str, float] | None]:
    """Create `runs` runs at once and wait for them: runs/sec, and CPU per run if measured.

    With `statements`, the SQL this process sends on `storage` while the runs are created
    and served is added to it (a host serving them in this process included), the polls
    that wait for them left out."""
    done_before = await _finished(storage)
    before = cpu_meter.sample(worker_pids) if cpu_meter.available() else None
    with direct.watching(storage.engine) if statements is not None else nullcontext([]) as sent:
        ids = [
            (
                await kernel.dispatch(
                    RunCreate(idempotency_key=f"{tag}-{shape}-{n}", workflow_id=shape, input=INPUT)
                )
            ).workflow_run_id
            for n in range(runs)
        ]
        await _all_finished(storage, done_before + len(ids))
    if statements is not None:
        statements += [sql for sql in sent if sql != _FINISHED.text]
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
        return (
            {"runs_per_s": rate, "first_burst_runs_per_s": first}
            | await one_at_a_time(kernel, storage, shape, isolated)
            | ({"cpu_ms_per_run": cpu} if cpu else {})
        )
    finally:
        await storage.close()


async def one_at_a_time(
    kernel: Kernel,
    storage: SqlStorage,
    shape: str,
    isolated: int,
    *,
    wake: Callable[[], None] | None = None,
) -> dict[str, float]:
    """`isolated` runs, each created when the one before has finished: run latency and
    stage→next-stage latency, p50 and p99, from the database's timestamps.

    `wake`, for a host serving the runs in this process (`WorkerHost.wake_claims`), is
    called after each creation, as `run_and_wait` does: without it such a host finds the
    run at its next claim poll (200 ms here), a latency `wfc run` users never see."""
    latencies, gaps = [], []
    for n in range(isolated):
        created = await kernel.dispatch(
            RunCreate(idempotency_key=f"one-{shape}-{n}", workflow_id=shape, input=INPUT)
        )
        if wake is not None:
            wake()
        while True:
            run = await storage.persistence.get_run(created.workflow_run_id)
            if run is not None and run.status in TERMINAL:
                break
            await asyncio.sleep(0.005)
        assert run.completed_at is not None
        latencies.append(ms(run.completed_at - run.created_at))
        gaps += stage_gaps(await storage.persistence.stages_of_run(run.id))
    return latency_figures(latencies, gaps)


def latency_figures(latencies: list[float], gaps: list[float]) -> dict[str, float]:
    """p50 and p99 of run latencies and stage→next-stage gaps (ms), as the table's columns."""
    return {
        "latency_p50_ms": pct(latencies, 50),
        "latency_p99_ms": pct(latencies, 99),
        "stage_gap_p50_ms": pct(gaps, 50),
        "stage_gap_p99_ms": pct(gaps, 99),
    }


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


# -- DBOS ------------------------------------------------------------------------------


def dbos_python() -> Path:
    python = DBOS_VENV / "bin" / "python"
    if not python.exists():
        print("installing dbos into benchmarks/.dbos-venv …", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(DBOS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "dbos"], check=True)
    return python


def dbos_case(url: str, shape: str, workers: int, runs: int, isolated: int) -> dict[str, Any]:
    """DBOS's workers and client on `url`, a PostgreSQL URL or DBOS's own `sqlite:///…`."""
    python = str(dbos_python())
    script = str(HERE / "dbos_shapes.py")
    plain = (
        url
        if url.startswith("sqlite")
        else make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
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


# -- the table -------------------------------------------------------------------------

IN_PROCESS = 0  # a Case's worker count for the rows served in the creating process
WORKERS = {"memory": (IN_PROCESS,), "sqlite": (IN_PROCESS, 1, 4), "postgres": (1, 4)}


@dataclass(frozen=True)
class Case:
    """One row of the table: an engine, a database, a worker count (`IN_PROCESS`: none, the
    runs served in the process that creates them) and a shape."""

    engine: str
    database: str
    workers: int
    shape: str


def cases(args: argparse.Namespace) -> list[Case]:
    """The main table's rows, in order: per database, worker count and shape, wfc then DBOS."""
    rows = []
    for database in args.database or ("memory", "sqlite", "postgres"):
        for workers in WORKERS[database]:
            if args.workers and workers not in args.workers:
                continue
            for shape in args.shape or ("seq3", "fan"):
                rows.append(Case("wfc", database, workers, shape))
                if with_dbos(database, workers, shape) and not args.no_dbos:
                    rows.append(Case("dbos", database, workers, shape))
    return rows


def with_dbos(database: str, workers: int, shape: str) -> bool:
    """Whether DBOS runs this case too: on PostgreSQL always; on SQLite seq3 with one worker
    process (its SQLite mode is for one process, and its fan's join waits on its 1 s result
    poll there, about 2 runs/s: minutes a burst)."""
    if database == "sqlite":
        return workers == 1 and shape == "seq3"
    return database == "postgres"


def run_case(case: Case, n: int, tmp: Path, stamp: str, args: argparse.Namespace) -> dict[str, Any]:
    """One run of a case, on a fresh database of its own."""
    name = f"{case.engine}_bench_{stamp}_{case.workers}_{case.shape}_{n}"
    if case.engine == "dbos":
        if case.database == "sqlite":
            url = f"sqlite:///{tmp / (name + '.sqlite')}"
            return dbos_case(url, case.shape, case.workers, args.runs, args.isolated)
        with postgres(name) as url:
            return dbos_case(url, case.shape, case.workers, args.runs, args.isolated)
    if case.database == "memory":
        return embedded.case("memory", case.shape, args.runs, args.isolated)
    settings = (case.shape, case.workers, args.runs, args.isolated, args.concurrency)
    if case.database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / (name + '.db')}"
        asyncio.run(_migrate(url))
        if case.workers == IN_PROCESS:
            return embedded.case("sqlite", case.shape, args.runs, args.isolated, url)
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


def measure_case(case: Case, tmp: Path, stamp: str, args: argparse.Namespace) -> dict[str, Any]:
    """A case run `args.repeat` times: its row (the median), logged as it comes."""
    row = median_of([run_case(case, n, tmp, stamp, args) for n in range(args.repeat)])
    row |= asdict(case)
    print(json.dumps(row), file=sys.stderr)
    return row


def count_statements(databases: list[str], tmp: Path, stamp: str) -> dict[str, dict[str, float]]:
    """Statements per stage execution, dequeued and handed, on each SQL database named."""
    statements = {}
    if "sqlite" in databases:
        sqlite_url = f"sqlite+aiosqlite:///{tmp / 'count.db'}"
        asyncio.run(_migrate(sqlite_url))
        statements["sqlite"] = asyncio.run(statements_per_stage(sqlite_url))
    if "postgres" in databases:
        with postgres(f"wfc_bench_{stamp}_count") as url:
            asyncio.run(_migrate(url))
            statements["postgres"] = asyncio.run(statements_per_stage(url))
    return statements


def floor_databases(databases: list[str]) -> list[str]:
    """The floors a selection of databases is read against: the memory adapters against
    the SQLite floor (the targets' yardstick for them, see `targets.py`)."""
    return sorted({"sqlite" if d == "memory" else d for d in databases})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The main table's options (`targets.py` takes the same)."""
    parser.add_argument("--runs", type=int, default=200, help="runs per burst")
    parser.add_argument("--isolated", type=int, default=30, help="runs made one at a time")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="job slots per wfc worker process"
    )
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each case; the median is reported"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument(
        "--out", type=Path, help="results JSON (default results.json, scaling_results.json)"
    )
    parser.add_argument(
        "--database", choices=tuple(WORKERS), action="append", help="only these databases"
    )
    parser.add_argument(
        "--workers", type=int, action="append", help="only these worker counts (0: in process)"
    )
    parser.add_argument("--shape", choices=("seq3", "fan"), action="append", help="only these")
    parser.add_argument("--no-floor", action="store_true", help="skip the hand-written floor")
    import scaling  # imports this module: here, not at the top

    scaling.add_arguments(parser)
    args = parser.parse_args()
    if args.scaling:
        scaling_table(args, args.out or HERE / "scaling_results.json")
        return
    args.out = args.out or HERE / "results.json"
    stamp = str(os.getpid())
    databases = args.database or list(WORKERS)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure_case(case, Path(tmp), stamp, args) for case in cases(args)]
        statements = count_statements(databases, Path(tmp), stamp)
        if not args.no_floor:  # the same run, so the two are read against the same machine
            shapes = args.shape or ("seq3", "fan")
            results += floor.measure(shapes, floor_databases(databases), Path(tmp))
    args.out.write_text(
        json.dumps({"results": results, "statements_per_stage": statements}, indent=2)
    )
    runtime_report.print_table(results, statements)


def scaling_table(args: argparse.Namespace, out: Path) -> None:
    """The scaling table (`benchmarks/scaling.py`): written to `--out`, printed."""
    import scaling

    with tempfile.TemporaryDirectory() as tmp:
        rows = scaling.measure(args, Path(tmp), str(os.getpid()))
    out.write_text(json.dumps({"scaling": rows}, indent=2))
    scaling.print_table(rows)


if __name__ == "__main__":
    main()
