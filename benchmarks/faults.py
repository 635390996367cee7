"""Fault benchmark: exactly once at scale, under kill -9, SIGSTOP and a PostgreSQL restart.

Run: `.venv/bin/python benchmarks/faults.py` (PostgreSQL at `WFC_BENCH_DATABASE_URL`,
default the local server; `--database sqlite` or `--database postgres` for one of them).
Reported, never asserted — except that it says loudly when a promise was broken.

What it does, per database: compiles the faults suite's two workflows
(`tests/faults/harness.py`: `chain`, a -> [b, c] -> d, and `polled`,
a -> [b, c, d] -> wait -> z with `wait` polled every 200 ms), starts `--workers`
`wfc worker` processes with a short lease, creates `--runs` runs (a tenth of them
`polled`) and, while they run, injects faults at random moments: kill -9 of a worker
(a fresh one takes its place), SIGSTOP of a worker for longer than its lease (then
SIGCONT), and on PostgreSQL a restart of the server (`pg_ctlcluster ... restart`,
skipped, and said so, when other databases of that server have sessions, unless
`--force-restart`). Then it reads the database and the stage ledger and prints:

- runs, and how they ended; kills, pauses, restarts;
- double commits: (run, stage) pairs with more than one `stage:completed` event in the
  outbox — must be 0;
- re-executions: body executions minus committed stages (execution is at least once, so
  a fault costs some; a number far above the interrupted stages means redelivery loops);
- time to recover: from each fault to the next stage committed anywhere (p50 / max), from
  each fault to the commit of the stages it interrupted (p50 / max), and from the last
  fault to all runs terminal.

Every wait is bounded (`--timeout`): a run that never ends is reported, not waited for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.faults.harness import (  # noqa: E402
    Fleet,
    chain_output,
    compile_workflows,
    count_terminal,
    create_runs,
    entries,
    polled_output,
    worker_env,
)
from wfc.runtime.adapters.sql import migrate  # noqa: E402

ADMIN_URL = os.environ.get(
    "WFC_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def wall_clock() -> float:
    """Seconds since the epoch: what the stage ledger and the database timestamps use."""
    return datetime.now(UTC).timestamp()  # noqa: TID251 - a benchmark's clock, not the runtime's


# -- databases -------------------------------------------------------------------------------


async def _admin(sql: str) -> list[Any]:
    engine = create_async_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql))
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def _migrate(url: str) -> None:
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def postgres_cluster() -> tuple[str, str]:
    """The (version, cluster) to restart: the one found in /etc/postgresql."""
    versions = sorted(Path("/etc/postgresql").iterdir(), key=lambda p: p.name)
    if not versions:
        raise RuntimeError("no PostgreSQL cluster in /etc/postgresql")
    version = versions[-1]
    cluster = sorted(p.name for p in version.iterdir())[0]
    return version.name, cluster


def others_on_server(ours: str) -> list[str]:
    """Databases other than ours with client sessions now: a restart would cut them off."""
    rows = asyncio.run(
        _admin(
            "SELECT DISTINCT datname FROM pg_stat_activity WHERE datname IS NOT NULL "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    )
    return sorted(str(r[0]) for r in rows if r[0] not in (ours, make_url(ADMIN_URL).database))


def restart_postgres() -> float:
    """Restart the server and wait until it accepts connections; seconds it was away."""
    version, cluster = postgres_cluster()
    began = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            asyncio.run(_admin("SELECT 1"))
            return time.monotonic() - began
        except Exception:
            time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not come back within 60 s")


# -- faults ----------------------------------------------------------------------------------


@dataclass
class Fault:
    """One injected fault: what, to whom (a worker id, or the server), when (wall clock),
    and the process it hit, for finding the stages it interrupted."""

    kind: str
    target: str
    at: float
    pid: int | None = None
    until: float | None = None  # a pause's SIGCONT


@dataclass
class Injector:
    """Injects faults at random moments while runs remain, within its budgets."""

    fleet: Fleet
    packages: list[Path]
    rng: random.Random
    kills: int
    pauses: int
    restarts: int
    pause_seconds: float
    database: str
    db_name: str
    force_restart: bool
    faults: list[Fault] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _paused: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self, progress: float) -> None:
        """Called often; resumes pauses that are due and sometimes injects a fault."""
        if self.restarts and progress >= 0.4:
            self.restarts -= 1
            self._restart()
            return
        choices = [k for k, left in (("kill", self.kills), ("pause", self.pauses)) if left > 0]
        if not choices or self.rng.random() > 0.08:  # about one fault every 2.5 s at 5 ticks/s
            return
        kind = self.rng.choice(choices)
        live = sorted(self.fleet.alive() - self.fleet.paused)
        if len(live) < 2:
            return  # keep someone working
        target = self.rng.choice(live)
        pid = self.fleet.processes[target].pid
        if kind == "kill":
            self.kills -= 1
            self.fleet.kill(target)
            self.faults.append(Fault("kill -9", target, wall_clock(), pid))
            self.fleet.start(self.packages, 1)
        else:
            self.pauses -= 1
            self.fleet.pause(target)
            fault = Fault("SIGSTOP", target, wall_clock(), pid, wall_clock() + self.pause_seconds)
            self.faults.append(fault)
            self._paused.append(fault)
            # On a timer of its own: the loop that calls `tick` may itself wait on a lock the
            # paused worker holds (a SQLite write lock), which would stretch the pause.
            timer = threading.Timer(self.pause_seconds, self._resume, (fault,))
            timer.daemon = True
            timer.start()

    def _restart(self) -> None:
        others = others_on_server(self.db_name)
        if others and not self.force_restart:
            self.notes.append(
                f"PostgreSQL restart skipped: databases {', '.join(others)} have sessions "
                "(--force-restart to restart anyway)"
            )
            return
        at = wall_clock()
        away = restart_postgres()
        self.faults.append(Fault("restart", "postgres", at))
        self.notes.append(f"PostgreSQL restarted, accepting connections again after {away:.1f} s")

    def _resume(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._paused:
                self._paused.remove(fault)
                self.fleet.resume(fault.target)

    def finish(self) -> None:
        with self._lock:
            for fault in self._paused:
                self.fleet.resume(fault.target)
            self._paused.clear()


# -- the measurement ---------------------------------------------------------------------------


async def _read(url: str) -> dict[str, Any]:
    """Runs, stage commits and completion times, read back in three statements."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            runs = (
                await conn.execute(text("SELECT id, workflow_id, status, input, output FROM runs"))
            ).all()
            events = (
                await conn.execute(
                    text("SELECT run_id, payload FROM outbox WHERE event_type = 'stage:completed'")
                )
            ).all()
            stages = (
                await conn.execute(
                    text(
                        "SELECT run_id, stage_id, completed_at FROM stages "
                        "WHERE status = 'COMPLETED'"
                    )
                )
            ).all()
    finally:
        await engine.dispose()

    def loads(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def stamp(value: Any) -> float:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())

    return {
        "runs": [(r[0], r[1], r[2], loads(r[3]), loads(r[4])) for r in runs],
        "commits": Counter((e[0], str(loads(e[1]).get("stage_id"))) for e in events),
        "completed_at": {(s[0], s[1]): stamp(s[2]) for s in stages if s[2] is not None},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def seconds(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{median(values):.2f} / {max(values):.2f} s"


def measure(
    url: str, ledger_path: Path, faults: list[Fault], all_done_at: float | None
) -> dict[str, Any]:
    """The figures, from the database and the stage ledger."""
    data = asyncio.run(_read(url))
    lines = entries(ledger_path)
    runs = data["runs"]
    statuses = Counter(str(r[2]) for r in runs)
    wrong = 0
    for _run_id, workflow, status, run_input, output in runs:
        if status == "COMPLETED":
            want = (chain_output if workflow == "chain" else polled_output)(run_input["n"])
            wrong += (output or {}).get("n") != want
    commits: Counter[tuple[str, str]] = data["commits"]
    double = sum(count - 1 for count in commits.values() if count > 1)
    executions = sum(1 for e in lines if e.what == "start")
    completions = sorted(data["completed_at"].values())

    def next_commit(after: float) -> float | None:
        later = [t for t in completions if t > after]
        return later[0] - after if later else None

    to_next = [d for f in faults if (d := next_commit(f.at)) is not None]
    interrupted: list[float] = []
    for fault in faults:
        if fault.pid is None:
            continue
        cut = fault.until if fault.until is not None else fault.at
        started = {(e.run, e.stage) for e in lines if e.pid == fault.pid and e.at <= fault.at}
        finished = {
            (e.run, e.stage)
            for e in lines
            if e.pid == fault.pid and e.what == "done" and e.at < cut
        }
        for key in started - finished:
            done = data["completed_at"].get(key)
            if done is not None and done > fault.at:
                interrupted.append(done - fault.at)
    last_fault = max((f.at for f in faults), default=None)
    return {
        "runs": len(runs),
        "statuses": dict(statuses),
        "wrong_outputs": wrong,
        "double_commits": double,
        "body_executions": executions,
        "committed_stages": len(commits),
        "re_executions": executions - len(commits),
        "fault_to_next_commit": to_next,
        "fault_to_interrupted_commit": interrupted,
        "last_fault_to_all_terminal": (
            all_done_at - last_fault if all_done_at is not None and last_fault else None
        ),
    }


def run_case(database: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    name = f"wfc_faults_bench_{os.getpid()}"
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'faults.db'}"
    else:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        asyncio.run(_admin(f"CREATE DATABASE {name}"))
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    fleet = Fleet(tmp, worker_env(url, tmp))
    try:
        asyncio.run(_migrate(url))
        packages = compile_workflows(tmp)
        plans = [packages["chain"], packages["polled"]]
        fleet.options = (
            "--concurrency",
            str(args.concurrency),
            "--tick-interval",
            "0.5",
            "--poll-interval",
            "0.5",
            "--stale-lease",
            str(args.stale_lease),
            "--heartbeat",
            str(args.stale_lease / 4),
            "--grace",
            "2",
        )
        fleet.env["FAULTS_BODY_SECONDS"] = str(args.body_seconds)
        fleet.start(plans, args.workers)
        polled = args.runs // 10
        began = time.monotonic()
        create_runs(url, packages["chain"], [{"n": n} for n in range(args.runs - polled)], "c")
        create_runs(url, packages["polled"], [{"n": n} for n in range(polled)], "p")
        created = time.monotonic() - began
        injector = Injector(
            fleet,
            plans,
            rng,
            kills=args.kills,
            pauses=args.pauses,
            restarts=args.restarts if database == "postgres" else 0,
            pause_seconds=args.stale_lease * 2,
            database=database,
            db_name=name,
            force_restart=args.force_restart,
        )
        deadline = time.monotonic() + args.timeout
        all_done_at = None
        done = 0
        while time.monotonic() < deadline:
            try:
                done = count_terminal(url)
            except Exception:  # the server restarting: look again
                done = done
            if done >= args.runs:
                all_done_at = wall_clock()
                break
            injector.tick(done / args.runs)
            time.sleep(0.2)
        injector.finish()
        elapsed = time.monotonic() - began
        fleet.stop_all(timeout=30)
        figures = measure(url, tmp / "ledger", injector.faults, all_done_at)
        figures |= {
            "database": database,
            "workers": args.workers,
            "kills": sum(f.kind == "kill -9" for f in injector.faults),
            "pauses": sum(f.kind == "SIGSTOP" for f in injector.faults),
            "restarts": sum(f.kind == "restart" for f in injector.faults),
            "notes": injector.notes,
            "finished": all_done_at is not None,
            "elapsed_s": elapsed,
            "create_s": created,
            "faults": [asdict(f) for f in injector.faults],
        }
        if all_done_at is None:
            figures["notes"].append(
                f"not all runs ended within --timeout {args.timeout:.0f} s; the workers' "
                f"last lines:\n{fleet.logs(3)}"
            )
        return figures
    finally:
        fleet.close()
        if database == "postgres":
            asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| db | runs | ended | workers | kills | pauses | restarts | double commits "
        "| wrong outputs | body executions | re-executions (interrupted by a fault) "
        "| fault → next commit (p50 / max) "
        "| fault → interrupted stage committed (p50 / max) | last fault → all terminal | wall time |"
    )
    print("|" + "---|" * 15)
    for r in rows:
        ended = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))
        tail = r["last_fault_to_all_terminal"]
        print(
            f"| {r['database']} | {r['runs']} | {ended} | {r['workers']} | {r['kills']} "
            f"| {r['pauses']} | {r['restarts']} | {r['double_commits']} | {r['wrong_outputs']} "
            f"| {r['body_executions']} | {r['re_executions']} "
            f"({len(r['fault_to_interrupted_commit'])}) "
            f"| {seconds(r['fault_to_next_commit'])} "
            f"| {seconds(r['fault_to_interrupted_commit'])} "
            f"| {f'{tail:.1f} s' if tail is not None else '–'} | {r['elapsed_s']:.0f} s |"
        )
    for r in rows:
        for note in r["notes"]:
            print(f"{r['database']}: {note}")
        if r["double_commits"]:
            print(f"{r['database']}: EXACTLY-ONCE BROKEN: {r['double_commits']} double commits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4, help="wfc worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="job slots per worker")
    parser.add_argument(
        "--database", choices=("sqlite", "postgres"), action="append", help="only these"
    )
    parser.add_argument("--kills", type=int, default=5, help="kill -9s to inject")
    parser.add_argument("--pauses", type=int, default=3, help="SIGSTOPs past the lease")
    parser.add_argument("--restarts", type=int, default=1, help="PostgreSQL restarts")
    parser.add_argument("--force-restart", action="store_true", help="even on a shared server")
    parser.add_argument("--stale-lease", type=float, default=2.0, help="seconds")
    parser.add_argument(
        "--body-seconds",
        type=float,
        default=0.1,
        help="each stage's sleep: long enough that a signal often lands inside a body",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds, per database")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "faults_results.json")
    parser.add_argument("--keep", type=Path, help="keep the ledger, logs and SQLite file here")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    print(f"seed {args.seed}", file=sys.stderr)
    rows = []
    for database in args.database or ("sqlite", "postgres"):
        if args.keep:
            (args.keep / database).mkdir(parents=True, exist_ok=True)
            row = run_case(database, args, args.keep / database)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                row = run_case(database, args, Path(tmp))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    args.out.write_text(json.dumps({"seed": args.seed, "results": rows}, indent=2))
    print_table(rows)


if __name__ == "__main__":
    main()
