"""Fault injection with real `wfc worker` processes: the workflows, the fleet, and the verdict.

Everything a scenario needs and nothing about one scenario in particular:

- two workflows, compiled into the test's directory, whose stage bodies
  write every execution to a ledger file (`start`, `done`, `check`, `ready`,
  with the worker's pid), so the test can tell a re-executed body (allowed:
  execution is at least once) from a re-committed stage (never allowed);
- `Fleet`, the worker processes: started, killed, paused and resumed with
  real signals, and always reaped in teardown, paused ones included;
- `Snapshot` and `verify`, which read the database the way an operator would
  (the storage API) and name every broken promise: a run not terminal, a
  stage whose `stage:completed` event is in the outbox other than exactly
  once, an output other than what the stage code computes, a job RUNNING
  for a worker that is gone.

The worker processes come from `tests.e2e.workers` (`start_worker`, `stop`,
`wait_until`): the faults suite drives the same command an operator runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.e2e.workers import start_worker, stop, wait_until
from wfc.compiler import compile_path
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.commands import RunCreate
from wfc.runtime.hosts import make_kernel
from wfc.runtime.job_records import JobRecord
from wfc.runtime.records import TERMINAL, RunRecord, Status
from wfc.runtime.registry import load_registry

__all__ = [
    "CHAIN",
    "MAPPED",
    "POLLED",
    "Entry",
    "Expect",
    "Fleet",
    "Snapshot",
    "chain_output",
    "compile_workflows",
    "count_terminal",
    "create_runs",
    "entries",
    "ledger",
    "mapped_output",
    "pid_in",
    "polled_output",
    "snapshot",
    "verify",
    "wait_terminal",
    "wait_until",
    "worker_env",
]

# -- the workflows -------------------------------------------------------------------------

CHAIN = """\
# a -> [b, c] -> d, each body a short sleep. Inputs steer the faults: `slow` makes the
# first execution of `a` in this run sleep that long (and say which process it is in),
# `hold` keeps `d` busy so the run is still RUNNING when a paused worker wakes up, and
# `poison` puts U+0000 in `a`'s error, or in the run's output (`d` passes `a`'s note on).
workflow chain {
  input { n: int, slow: float = 0.0, hold: float = 0.0, poison: str = "" }
  output { n: int, note: str }

  stage a {
    input { n: int, slow: float, hold: float, poison: str }
    output { n: int, note: str, hold: float }
    retry 5 times, backoff exponential 100ms x1
  }
  stage b { input none  needs a  output { n: int } }
  stage c { input none  needs a  output { n: int } }
  stage d { input none  needs a, b, c  output { n: int, note: str } }

  flow a -> [b, c] -> d
}
"""

POLLED = """\
# a -> [b, c, d] -> wait -> z, where `wait` suspends and is polled every 200 ms until
# its check has been called READY_AFTER times for the run.
workflow polled {
  input { n: int }
  output { n: int }

  stage a { input { n: int } output { n: int } }
  stage b { input none  needs a  output { n: int } }
  stage c { input none  needs a  output { n: int } }
  stage d { input none  needs a  output { n: int } }
  async stage wait {
    input none
    needs b, c, d
    output { n: int }
    poll every 200ms, give up after 2m
  }
  stage z { input none  needs wait  output { n: int } }

  flow a -> [b, c, d] -> wait -> z
}
"""

MAPPED = """\
workflow mapped {
  type Item { n: int }
  input { items: list[Item] }
  output { n: int }

  stage square { map input.items, at most 4 at once  output { n: int } }
  stage total { input none  needs square  output { n: int } }

  flow square -> total
}
"""

_PRELUDE = '''"""Stage `{stage}` of the faults suite: records each execution in the ledger."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from wfc.runtime import Completion, NotReady, Ready, Suspend

from .._models import {cls}Output
from .._stages import *  # noqa: F403


def record(what: str, run_id: str, stage: str = "{stage}") -> None:
    """One line per event, with the process and the wall-clock time, appended in one write
    (atomic under O_APPEND)."""
    line = f"{{what}} {{run_id}} {{stage}} {{os.getpid()}} {{time.time():.6f}}\\n".encode()
    fd = os.open(os.environ["FAULTS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


async def body() -> None:
    """The stage's work: long enough for a signal to land inside it."""
    await asyncio.sleep(float(os.environ.get("FAULTS_BODY_SECONDS", "0.02")))
'''

_CHAIN_BODIES = {
    "a": '''

def first_time(run_id: str) -> bool:
    """Whether this is the first execution of `a` in this run that is told to be slow; the
    pid goes to `slow-<run>`, written whole (rename), for the test to signal."""
    marks = Path(os.environ["FAULTS_DIR"])
    try:
        os.close(os.open(marks / f"slow-{run_id}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    (marks / f"slow-{run_id}.tmp").write_text(str(os.getpid()))
    (marks / f"slow-{run_id}.tmp").rename(marks / f"slow-{run_id}")
    return True


class A(AStage):  # noqa: F405
    async def execute(self, ctx: AContext) -> AOutput:  # noqa: F405
        record("start", ctx.run_id)
        if ctx.input.slow and first_time(ctx.run_id):
            await asyncio.sleep(ctx.input.slow)
        await body()
        record("done", ctx.run_id)
        if ctx.input.poison == "error":
            raise RuntimeError("poisoned error \\x00 with a NUL in it")
        note = "poisoned output \\x00" if ctx.input.poison == "output" else ""
        return AOutput(n=ctx.input.n + 1, note=note, hold=ctx.input.hold)
''',
    "b": """

class B(BStage):  # noqa: F405
    async def execute(self, ctx: BContext) -> BOutput:  # noqa: F405
        record("start", ctx.run_id)
        await body()
        record("done", ctx.run_id)
        return BOutput(n=ctx.a.n * 2)
""",
    "c": """

class C(CStage):  # noqa: F405
    async def execute(self, ctx: CContext) -> COutput:  # noqa: F405
        record("start", ctx.run_id)
        await body()
        record("done", ctx.run_id)
        return COutput(n=ctx.a.n * 3)
""",
    "d": """

class D(DStage):  # noqa: F405
    async def execute(self, ctx: DContext) -> DOutput:  # noqa: F405
        record("start", ctx.run_id)
        await asyncio.sleep(ctx.a.hold)
        await body()
        record("done", ctx.run_id)
        return DOutput(n=ctx.b.n + ctx.c.n, note=ctx.a.note)
""",
}

_POLLED_BODIES = {
    "a": """

class A(AStage):  # noqa: F405
    async def execute(self, ctx: AContext) -> AOutput:  # noqa: F405
        record("start", ctx.run_id)
        await body()
        record("done", ctx.run_id)
        return AOutput(n=ctx.input.n + 1)
""",
    **{
        stage: f"""

class {stage.upper()}({stage.upper()}Stage):  # noqa: F405
    async def execute(self, ctx: {stage.upper()}Context) -> {stage.upper()}Output:  # noqa: F405
        record("start", ctx.run_id)
        await body()
        record("done", ctx.run_id)
        return {stage.upper()}Output(n=ctx.a.n * {factor})
"""
        for stage, factor in (("b", 2), ("c", 3), ("d", 5))
    },
    "wait": '''

READY_AFTER = int(os.environ.get("FAULTS_READY_AFTER", "3"))
CHECK_SECONDS = float(os.environ.get("FAULTS_CHECK_SECONDS", "0.1"))
GRID = 0.4
_readied: list[str] = []  # runs this process answered Ready for, transition not seen yet


def checks(run_id: str) -> int:
    """How many times any process has checked this run's `wait` (the ledger is shared)."""
    ledger = Path(os.environ["FAULTS_LEDGER"]).read_text().splitlines()
    return sum(1 for line in ledger if line.startswith(f"check {run_id} wait "))


def on_grid() -> timedelta:
    """The time to the next multiple of GRID seconds: every run's next check falls due at
    the same instant, so one poll finds several due stages."""
    now = asyncio.get_running_loop().time()
    return timedelta(seconds=GRID - (now % GRID) + 0.01)


async def die_between_commit_and_transition() -> None:
    """With FAULTS_DIE_AFTER_COMMIT, SIGKILL this worker once, when a stage it answered Ready
    for is committed but its run not yet transitioned (no job for `z`): the window between
    a poll's commit and the transition the poll makes after it."""
    if not os.environ.get("FAULTS_DIE_AFTER_COMMIT"):
        return
    from wfc.runtime.adapters.sql import open_storage

    marks = Path(os.environ["FAULTS_DIR"])
    storage = open_storage(os.environ["WFC_DATABASE_URL"])
    try:
        for run_id in list(_readied):
            row = await storage.persistence.get_stage(run_id, "wait")
            jobs = await storage.jobs.jobs_of_run(run_id)
            if any(job.stage_id == "z" for job in jobs):
                _readied.remove(run_id)  # transitioned: that window is closed
            elif row is not None and row.status.value == "COMPLETED":
                try:
                    os.close(os.open(marks / "died.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    return  # one death per test
                (marks / "died").write_text(f"{os.getpid()} {run_id}")
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        await storage.close()


class Wait(WaitStage):  # noqa: F405
    async def execute(self, ctx: WaitContext) -> WaitOutput | Suspend:  # noqa: F405
        record("start", ctx.run_id)
        await body()
        record("done", ctx.run_id)
        return Suspend(state={"n": ctx.b.n + ctx.c.n + ctx.d.n}, poll_interval=on_grid())

    async def check_completion(
        self,
        state: dict[str, Any],
        ctx: WaitCheckContext,  # noqa: F405
    ) -> Completion[WaitOutput]:  # noqa: F405
        await die_between_commit_and_transition()
        record("check", ctx.run_id)
        await asyncio.sleep(CHECK_SECONDS)  # a provider's status call takes a while
        if checks(ctx.run_id) < READY_AFTER:
            return NotReady(next_check_in=on_grid())
        record("ready", ctx.run_id)
        _readied.append(ctx.run_id)
        return Ready(output=WaitOutput(n=state["n"]))  # noqa: F405
''',
    "z": """

class Z(ZStage):  # noqa: F405
    async def execute(self, ctx: ZContext) -> ZOutput:  # noqa: F405
        record("start", ctx.run_id)
        await body()
        record("done", ctx.run_id)
        return ZOutput(n=ctx.wait.n + 1)
""",
}


_MAPPED_BODIES = {
    "square": """

class Square(SquareStage):  # noqa: F405
    async def execute(self, ctx: SquareContext) -> SquareOutput:  # noqa: F405
        item = f"square-{ctx.item_index}"
        record("start", ctx.run_id, item)
        await body()
        record("done", ctx.run_id, item)
        return SquareOutput(n=ctx.item.n * ctx.item.n)
""",
    "total": """

class Total(TotalStage):  # noqa: F405
    async def execute(self, ctx: TotalContext) -> TotalOutput:  # noqa: F405
        record("start", ctx.run_id)
        record("done", ctx.run_id)
        return TotalOutput(n=sum(square.n for square in ctx.square))
""",
}


def mapped_output(items: Sequence[int]) -> int:
    """What `mapped` computes: the sum of the items' squares."""
    return sum(n * n for n in items)


def chain_output(n: int) -> int:
    """What `chain` computes for input n: d = b + c = 2(n+1) + 3(n+1)."""
    return 5 * (n + 1)


def polled_output(n: int) -> int:
    """What `polled` computes for input n: z = (b + c + d) + 1 = 10(n+1) + 1."""
    return 10 * (n + 1) + 1


def compile_workflows(directory: Path) -> dict[str, Path]:
    """Compile `chain`, `polled` and `mapped` into `directory` with their stage code;
    workflow → package."""
    packages = {}
    for name, source, bodies in (
        ("chain", CHAIN, _CHAIN_BODIES),
        ("polled", POLLED, _POLLED_BODIES),
        ("mapped", MAPPED, _MAPPED_BODIES),
    ):
        path = directory / f"{name}.wf"
        path.write_text(source)
        result = compile_path(path)
        assert result.ok and result.out_dir is not None, result.diagnostics
        for stage, code in bodies.items():
            stub = result.out_dir / "stages" / f"{stage}.py"
            stub.write_text(_PRELUDE.format(stage=stage, cls=stage.capitalize()) + code)
        packages[name] = result.out_dir
    return packages


# -- the ledger ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One ledger line: what happened (`start`, `done`, `check`, `ready`), to which run and
    stage, in which process, when (seconds since the epoch)."""

    what: str
    run: str
    stage: str
    pid: int
    at: float


def entries(path: Path) -> list[Entry]:
    """Every line of the ledger, in the order written."""
    if not path.exists():
        return []
    return [
        Entry(what, run, stage, int(pid), float(at))
        for what, run, stage, pid, at in (line.split() for line in path.read_text().splitlines())
    ]


def ledger(path: Path) -> Counter[tuple[str, str, str]]:
    """(what, run, stage) → how many times, from every process's appends."""
    return Counter((e.what, e.run, e.stage) for e in entries(path))


# -- creating runs and reading them back ---------------------------------------------------


def create_runs(url: str, package: Path, inputs: Sequence[dict[str, Any]], tag: str) -> list[str]:
    """Create one run per input (as a web app would, through the kernel); their ids."""

    async def create() -> list[str]:
        storage = open_storage(url)
        try:
            kernel = make_kernel(storage, load_registry([package]))
            ids = []
            for n, run_input in enumerate(inputs):
                result = await kernel.dispatch(
                    RunCreate(
                        idempotency_key=f"{tag}-{n}", workflow_id=package.name, input=run_input
                    )
                )
                ids.append(result.workflow_run_id)
            return ids
        finally:
            await storage.close()

    return asyncio.run(create())


_TERMINAL_COUNT = text(
    "SELECT count(*) FROM runs WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')"
)


def count_terminal(url: str) -> int:
    """How many runs are finished: one cheap statement, so polling it costs the workers little."""

    async def count() -> int:
        storage = open_storage(url)
        try:
            async with storage.engine.connect() as conn:
                return int((await conn.execute(_TERMINAL_COUNT)).scalar_one())
        finally:
            await storage.close()

    return asyncio.run(count())


@dataclass(frozen=True)
class Snapshot:
    """What the database says about some runs: each run, its jobs, and how many
    `stage:completed` events its outbox holds per stage."""

    runs: dict[str, RunRecord | None]
    jobs: dict[str, list[JobRecord]]
    completed_events: dict[str, Counter[str]]
    stage_status: dict[str, dict[str, Status]]


def snapshot(url: str, run_ids: Iterable[str]) -> Snapshot:
    async def read() -> Snapshot:
        storage = open_storage(url)
        try:
            runs: dict[str, RunRecord | None] = {}
            jobs, events, stages = {}, {}, {}
            for run_id in run_ids:
                runs[run_id] = await storage.persistence.get_run(run_id)
                jobs[run_id] = await storage.jobs.jobs_of_run(run_id)
                events[run_id] = Counter(
                    str(event.payload.get("stage_id"))
                    for event in await storage.persistence.outbox_of_run(run_id)
                    if event.event_type == "stage:completed"
                )
                stages[run_id] = {
                    row.stage_id: row.status
                    for row in await storage.persistence.stages_of_run(run_id)
                }
            return Snapshot(runs, jobs, events, stages)
        finally:
            await storage.close()

    return asyncio.run(read())


@dataclass
class Expect:
    """What one run must end as: its status, its output's `n` when it completes, and the
    stages that must each have been committed exactly once."""

    status: frozenset[Status]
    n: int | None
    stages: tuple[str, ...]


def verify(
    state: Snapshot, expected: dict[str, Expect], live_workers: set[str], context: str
) -> None:
    """Fail naming every broken promise at once (a scenario often breaks several)."""
    problems: list[str] = []
    for run_id, want in expected.items():
        run = state.runs[run_id]
        if run is None:
            problems.append(f"run {run_id} is missing")
            continue
        if run.status not in want.status:
            stages = state.stage_status[run_id]
            problems.append(
                f"run {run_id} is {run.status.value}, expected {sorted(s.value for s in want.status)}"
                f" (stages { ({k: v.value for k, v in stages.items()}) }, error {run.error})"
            )
        counts = state.completed_events[run_id]
        if run.status is Status.COMPLETED:
            for stage in want.stages:
                if counts[stage] != 1:
                    problems.append(
                        f"run {run_id}: stage {stage} committed {counts[stage]} times "
                        "(stage:completed events in the outbox), expected exactly 1"
                    )
            got = run.output.get("n") if isinstance(run.output, dict) else run.output
            if want.n is not None and got != want.n:
                problems.append(f"run {run_id}: output n={got!r}, the stage code computes {want.n}")
        else:
            problems += [
                f"run {run_id}: stage {stage} committed {count} times, expected at most 1"
                for stage, count in counts.items()
                if count > 1
            ]
        for job in state.jobs[run_id]:
            if job.status is Status.RUNNING and job.worker_id not in live_workers:
                problems.append(
                    f"run {run_id}: job {job.id} ({job.stage_id}) is RUNNING for worker "
                    f"{job.worker_id}, which is not alive"
                )
            if run.status in TERMINAL and job.status is Status.PENDING:
                problems.append(
                    f"run {run_id} is {run.status.value} but job {job.id} ({job.stage_id}) "
                    "is still PENDING"
                )
    assert not problems, f"{context}:\n  " + "\n  ".join(problems)


# -- the workers ---------------------------------------------------------------------------


@dataclass
class Fleet:
    """The `wfc worker` processes of one test. Every process ever started is remembered, so
    `close` (the fixture's teardown) reaps them all, paused ones included, whatever the test
    did to them or however it failed."""

    directory: Path
    env: dict[str, str]
    options: tuple[str, ...] = ()
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    kills: int = 0
    _serial: int = 0

    def start(self, package: Sequence[Path], count: int = 1, *extra: str) -> list[str]:
        """Start `count` workers over `package`s; their worker ids."""
        started = []
        for _ in range(count):
            worker_id = f"w{self._serial}"
            self._serial += 1
            plans = [arg for path in package[1:] for arg in ("--plan", str(path))]
            self.processes[worker_id] = start_worker(
                package[0],
                self.env,
                self.directory,
                self.directory / f"{worker_id}.log",
                "--worker-id",
                worker_id,
                *self.options,
                *plans,
                *extra,
            )
            started.append(worker_id)
        return started

    def alive(self) -> set[str]:
        """The ids of the workers whose process still runs (paused ones included)."""
        return {wid for wid, proc in self.processes.items() if proc.poll() is None}

    def by_pid(self, pid: int) -> str:
        return next(wid for wid, proc in self.processes.items() if proc.pid == pid)

    def kill(self, worker_id: str) -> None:
        """kill -9: no grace, no release, its leases left for the others to reap."""
        process = self.processes[worker_id]
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        self.paused.discard(worker_id)
        self.kills += 1

    def pause(self, worker_id: str) -> None:
        """SIGSTOP: the process keeps its leases but stops heartbeating and committing."""
        self.processes[worker_id].send_signal(signal.SIGSTOP)
        self.paused.add(worker_id)

    def resume(self, worker_id: str) -> None:
        self.processes[worker_id].send_signal(signal.SIGCONT)
        self.paused.discard(worker_id)

    def stop_all(self, timeout: float = 20) -> dict[str, int]:
        """SIGTERM every live worker (resuming paused ones first); their exit codes."""
        for worker_id in list(self.paused):
            self.resume(worker_id)
        codes = {}
        for worker_id, process in self.processes.items():
            if process.poll() is None:
                self._wait_serving(worker_id, timeout)
                codes[worker_id] = stop(process, signal.SIGTERM, timeout)
        return codes

    def _wait_serving(self, worker_id: str, timeout: float) -> None:
        """Wait until a worker serves (or has exited) before it is sent SIGTERM.

        A replacement started just before the end of a test may still be starting its
        interpreter, before any handler of wfc's exists, and a SIGTERM then takes the
        signal's default action (exit -15): that says how fast the test ran, not how the
        worker stops, which is what the exit codes here check."""
        process, log = self.processes[worker_id], self.directory / f"{worker_id}.log"
        self.wait(
            lambda: process.poll() is not None or '"serving"' in log.read_text(),
            timeout,
            f"worker {worker_id} to serve before it is stopped",
        )

    def close(self) -> None:
        """Kill whatever is left, without waiting on anything that could hang."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
                pass

    def wait(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """`wait_until`, with the workers' last log lines in the failure message."""
        try:
            return wait_until(condition, timeout, what)
        except AssertionError as late:
            raise AssertionError(f"{late} (within {timeout:.0f} s)\n{self.logs()}") from None

    def logs(self, lines: int = 8) -> str:
        """The last lines of each worker's log, for a failure message."""
        shown = []
        for worker_id in self.processes:
            log = self.directory / f"{worker_id}.log"
            tail = log.read_text().splitlines()[-lines:] if log.exists() else []
            shown.append(f"--- {worker_id}\n" + "\n".join(tail))
        return "\n".join(shown)


def wait_terminal(url: str, total: int, timeout: float, fleet: Fleet, what: str) -> float:
    """Wait until `total` runs are finished; the seconds it took. On timeout the failure says
    how many were left and what the workers last logged."""
    began = time.monotonic()
    deadline = began + timeout
    done = 0
    while time.monotonic() < deadline:
        done = count_terminal(url)
        if done >= total:
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(
        f"{what}: only {done} of {total} runs finished within {timeout:.0f} s\n{fleet.logs()}"
    )


def pid_in(path: Path) -> int:
    return int(path.read_text().split()[0])


def worker_env(url: str, directory: Path, **extra: str) -> dict[str, str]:
    """The workers' environment: the database, the ledger and the marker directory."""
    return {
        **os.environ,
        "WFC_DATABASE_URL": url,
        "FAULTS_LEDGER": str(directory / "ledger"),
        "FAULTS_DIR": str(directory),
        "NO_COLOR": "1",
        **extra,
    }
