"""Real processes racing on one database: every job and every run is taken exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.databases import sql_storage
from wfc.runtime.adapters.sql import SqlStorage
from wfc.runtime.records import RunRecord, Status
from wfc.testing import FakeClock
from wfc.testing.conformance import a_job, a_run


@pytest.fixture(params=["postgres", "sqlite"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStorage]:
    async with sql_storage(request.param, tmp_path) as store:
        yield store


def race(mode: str, url: str, workers: int) -> list[list[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.race_worker", mode, url, f"w{i}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def _url(storage: SqlStorage) -> str:
    return storage.engine.url.render_as_string(hide_password=False)


async def test_racing_workers_execute_every_job_exactly_once(storage: SqlStorage) -> None:
    many = storage.engine.dialect.name == "postgresql"
    total, workers = (2000, 4) if many else (300, 2)
    ids: list[str] = []
    for start in range(0, total, 500):
        ids += await storage.jobs.enqueue(
            [
                a_job(f"r{i % 50}", f"s{i}", priority=i % 3)
                for i in range(start, min(start + 500, total))
            ]
        )
    taken = race("jobs", _url(storage), workers)
    flat = [job_id for batch in taken for job_id in batch]
    assert len(flat) == total and sorted(flat) == sorted(ids)
    statuses = {j.status for r in range(50) for j in await storage.jobs.jobs_of_run(f"r{r}")}
    assert statuses == {Status.COMPLETED}


async def test_racing_claimers_start_every_run_exactly_once(storage: SqlStorage) -> None:
    clock = FakeClock()
    total = 400 if storage.engine.dialect.name == "postgresql" else 150
    runs: list[RunRecord] = []
    for i in range(total):
        clock.advance(timedelta(milliseconds=1))
        runs.append(a_run(clock, f"run-{i}", priority=i % 4))
    for run in runs:
        await storage.persistence.create_run(run)
    taken = race("runs", _url(storage), 4)
    flat = [run_id for batch in taken for run_id in batch]
    assert sorted(flat) == sorted(r.id for r in runs)
    assert {r.status for r in await storage.persistence.list_runs(limit=total)} == {Status.RUNNING}
