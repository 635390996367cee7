"""Queues and fleet limits declared in a `.wf` file, held by real `wfc worker` processes:
four workers of eight slots race on one PostgreSQL database for a stage under
`concurrency 2`; the stage's executions, written to a ledger file with their start and
end instants, never overlap more than twice; a stage on the `reports` queue runs only on
the worker started with that queue."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import create_database, drop_database
from tests.e2e.workers import environment, start_worker, stop, wait_until, wfc
from wfc.compiler.driver import compile_path
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.commands import RunCreate
from wfc.runtime.hosts import make_kernel
from wfc.runtime.job_records import JobRecord
from wfc.runtime.records import RunRecord, Status
from wfc.runtime.registry import load_registry

LIMITED = """workflow limited {
  input { customer: str, n: int }
  output { n: int }

  stage call {
    input { customer: str, n: int }
    output { n: int }
    concurrency 2
  }
  stage report {
    input { n: int }
    output { n: int }
    queue "reports"
  }

  flow call -> report
}
"""

CALL = """import os
import time

from .._models import CallOutput
from .._stages import CallContext, CallStage


class Call(CallStage):
    def execute(self, ctx: CallContext) -> CallOutput:
        began = time.time()
        time.sleep(0.15)
        with open(os.environ["COUNTED_LEDGER"], "a") as ledger:
            ledger.write(f"{began} {time.time()}\\n")
        return CallOutput(n=ctx.input.n)
"""

REPORT = """from .._models import ReportOutput
from .._stages import ReportContext, ReportStage


class Report(ReportStage):
    def execute(self, ctx: ReportContext) -> ReportOutput:
        return ReportOutput(n=ctx.input.n + 1)
"""

RUNS = 16


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    url = asyncio.run(create_database(empty=True))
    try:
        env = environment(url, tmp_path / "unused")
        assert wfc("db", "upgrade", "--url", url, env=env, cwd=tmp_path).returncode == 0
        yield url
    finally:
        asyncio.run(drop_database(url))


def _package(directory: Path) -> Path:
    source = directory / "limited.wf"
    source.write_text(LIMITED)
    result = compile_path(source)
    assert result.ok and result.out_dir is not None, result.diagnostics
    (result.out_dir / "stages" / "call.py").write_text(CALL)
    (result.out_dir / "stages" / "report.py").write_text(REPORT)
    return result.out_dir


def _read(url: str) -> tuple[list[RunRecord], list[JobRecord]]:
    async def read() -> tuple[list[RunRecord], list[JobRecord]]:
        storage = open_storage(url)
        try:
            runs = await storage.persistence.list_runs(limit=1000)
            jobs = [job for run in runs for job in await storage.jobs.jobs_of_run(run.id)]
            return runs, jobs
        finally:
            await storage.close()

    return asyncio.run(read())


def _create_runs(url: str, package: Path) -> None:
    async def create() -> None:
        storage = open_storage(url)
        try:
            kernel = make_kernel(storage, load_registry([package]))
            for n in range(RUNS):
                given = {"customer": f"c{n % 3}", "n": n}
                await kernel.dispatch(
                    RunCreate(idempotency_key=f"r{n}", workflow_id="limited", input=given)
                )
        finally:
            await storage.close()

    asyncio.run(create())


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted(edge for began, ended in spans for edge in ((began, 1), (ended, -1)))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def test_four_workers_hold_a_concurrency_limit_and_a_queue(tmp_path: Path, pg_url: str) -> None:
    package = _package(tmp_path)
    ledger = tmp_path / "ledger"
    env = environment(pg_url, ledger)
    _create_runs(pg_url, package)
    workers = [
        start_worker(
            package,
            env,
            tmp_path,
            tmp_path / f"w{n}.log",
            "--concurrency",
            "8",
            "--worker-id",
            f"w{n}",
            "--poll-interval",
            "0.05",
        )
        for n in range(3)
    ]

    def all_done() -> bool:
        runs, _ = _read(pg_url)
        return len(runs) == RUNS and all(run.status is Status.COMPLETED for run in runs)

    try:
        wait_until(
            lambda: len(ledger.read_text().splitlines()) == RUNS if ledger.exists() else False,
            60,
            "every `call` to run",
        )
        runs, _ = _read(pg_url)
        assert all(run.status is Status.RUNNING for run in runs)  # `report` waits its queue
        shown = wfc("runs", "show", runs[0].id, env=env, cwd=tmp_path)
        assert "waits for a worker on queue 'reports'" in shown.stdout, shown.stdout
        workers.append(
            start_worker(
                package,
                env,
                tmp_path,
                tmp_path / "w3.log",
                "--concurrency",
                "8",
                "--worker-id",
                "w3",
                "--queue",
                "default",
                "--queue",
                "reports",
            )
        )
        wait_until(all_done, 60, "every run to complete")
    finally:
        codes = [stop(worker) for worker in workers]
    assert codes == [0, 0, 0, 0]
    spans = [
        (float(began), float(ended))
        for began, ended in (line.split() for line in ledger.read_text().splitlines())
    ]
    assert len(spans) == RUNS and _most_at_once(spans) == 2
    _, jobs = _read(pg_url)
    assert {job.worker_id for job in jobs if job.stage_id == "report"} == {"w3"}
    assert {job.worker_id for job in jobs if job.stage_id == "call"} > {"w0"}  # shared out
