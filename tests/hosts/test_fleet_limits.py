"""Fleet limits on real time with racing workers: four workers of eight slots each, each
with its own connection pool to one SQLite file or PostgreSQL database, run the same
stages; a ledger of when each execution started and ended shows the bounds held."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import open_storage, postgres_database
from wfc.plan import ConcurrencyLimit, RateLimit
from wfc.runtime import RunCreate, StageDefinition, WorkflowBuilder, define_stage
from wfc.runtime.adapters.sql import PoolOptions
from wfc.runtime.hosts import WorkerHost, make_kernel
from wfc.runtime.records import TERMINAL, Status
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow

WORKERS = 4
SLOTS = 8


class Ask(BaseModel):
    customer: str
    n: int


class Done(BaseModel):
    n: int


class Ledger:
    """When each execution of each stage began and ended, across the workers' threads."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, float, float]] = []
        self._lock = threading.Lock()

    def record(self, stage: str, key: str, began: float) -> None:
        with self._lock:
            self.spans.append((stage, key, began, time.monotonic()))

    def most_at_once(self, stage: str, key: str | None = None) -> int:
        """The most executions of `stage` (under `key`) that overlapped."""
        edges = sorted(
            edge
            for s, k, began, ended in self.spans
            if s == stage and (key is None or k == key)
            for edge in ((began, 1), (ended, -1))
        )
        most = now = 0
        for _, step in edges:  # at one instant an end sorts before a start
            now += step
            most = max(most, now)
        return most


LEDGER = Ledger()


def _call(ctx: Any) -> Done:
    began = time.monotonic()
    time.sleep(0.05)
    LEDGER.record(ctx.stage_id, ctx.input.customer, began)
    return Done(n=ctx.input.n)


def _with(stage: StageDefinition, **plan: Any) -> StageDefinition:
    return replace(stage, plan=stage.plan.model_copy(update=plan))


def _workflow(workflow_id: str, **limits: Any) -> Workflow:
    stage = _with(define_stage(id="call", input=Ask, output=Done, execute=_call), **limits)
    return WorkflowBuilder(workflow_id, workflow_id, input=Ask).pipe(stage).build()


REGISTRY = WorkflowMap(
    [
        _workflow("bounded", concurrency=ConcurrencyLimit(max=2)),
        _workflow("per_customer", concurrency=ConcurrencyLimit(max=1, per=("input", "customer"))),
        _workflow("metered", rate=RateLimit(max=4, window_ms=1000)),
    ]
)


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    LEDGER.spans.clear()
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
        storage = open_storage(url)
        await storage.create_schema()
        await storage.close()
        yield url
        return
    async with postgres_database() as url:
        yield url


async def _fleet_runs(url: str, workflow_id: str, inputs: list[dict[str, Any]]) -> list[datetime]:
    """Create the runs, then let four workers race through them; every run completes. The
    instants their jobs were leased, in order."""
    storages = [
        open_storage(url, worker_id=f"w{n}", pool=PoolOptions.for_slots(SLOTS))
        for n in range(WORKERS)
    ]
    kernels = [make_kernel(storage, REGISTRY) for storage in storages]
    run_ids = []
    for n, given in enumerate(inputs):
        created = await kernels[0].dispatch(
            RunCreate(idempotency_key=f"{workflow_id}-{n}", workflow_id=workflow_id, input=given)
        )
        run_ids.append(created.workflow_run_id)
    hosts = [
        WorkerHost(
            kernel,
            worker_id=f"w{n}",
            concurrency=SLOTS,
            orchestration_interval=timedelta(milliseconds=200),
            job_poll_interval=timedelta(milliseconds=20),
            wakeups=storages[n].wakeups,
        )
        for n, kernel in enumerate(kernels)
    ]
    for worker in hosts:
        await worker.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = [await storages[0].persistence.get_run(r) for r in run_ids]
            if all(run is not None and run.status in TERMINAL for run in runs):
                break
            await asyncio.sleep(0.1)
        assert all(run is not None and run.status is Status.COMPLETED for run in runs)
        jobs = [job for r in run_ids for job in await storages[0].jobs.jobs_of_run(r)]
        assert all(job.attempt == 1 for job in jobs)  # each leased once: its lease is its start
        return sorted(job.started_at for job in jobs if job.started_at is not None)
    finally:
        for worker in hosts:
            await worker.stop()
        for storage in storages:
            await storage.close()


async def test_a_concurrency_bound_holds_across_racing_workers(url: str) -> None:
    await _fleet_runs(url, "bounded", [{"customer": "c", "n": n} for n in range(24)])
    assert len(LEDGER.spans) == 24
    assert LEDGER.most_at_once("call") == 2


async def test_a_per_key_bound_holds_for_each_key(url: str) -> None:
    inputs = [{"customer": c, "n": n} for n in range(8) for c in ("acme", "globex", "initech")]
    await _fleet_runs(url, "per_customer", inputs)
    assert [LEDGER.most_at_once("call", c) for c in ("acme", "globex", "initech")] == [1, 1, 1]
    assert LEDGER.most_at_once("call") > 1  # the keys ran beside each other


async def test_a_rate_limit_holds_within_every_window(url: str) -> None:
    leases = await _fleet_runs(url, "metered", [{"customer": "c", "n": n} for n in range(10)])
    assert len(leases) == 10
    # No five leases within one second: each fifth is a window after the first.
    gaps = [leases[i + 4] - leases[i] for i in range(len(leases) - 4)]
    assert all(gap >= timedelta(seconds=1) for gap in gaps), gaps
    assert leases[-1] - leases[0] < timedelta(seconds=4)  # and it kept moving
