"""Queues and fleet limits from a plan to its jobs: a stage's queue and limits resolved per
run (a `per` key read from the run's input), carried from item to item of a map, and held
while runs execute (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import kernel_on_storage
from wfc import plan
from wfc.plan import ConcurrencyLimit, InputSource, MapSpec, RateLimit
from wfc.runtime import RunClaimPending, StageDefinition, WorkflowBuilder, define_stage, records
from wfc.runtime.hosts import process_job
from wfc.runtime.job_records import JobRecord
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel


class Line(BaseModel):
    line: int


class Order(BaseModel):
    customer: str
    lines: list[Line]


class Priced(BaseModel):
    price: int


class Total(BaseModel):
    total: int


def price(ctx: Any) -> Priced:
    return Priced(price=ctx.input.line * 10)


def add_up(ctx: Any) -> Total:
    return Total(total=sum(p["price"] for p in ctx.require("price")))


def _with(stage: StageDefinition, **plan: Any) -> StageDefinition:
    """A stage definition with these plan fields (the builder's own come with the compiler)."""
    return replace(stage, plan=stage.plan.model_copy(update=plan))


def orders() -> Workflow:
    mapped = _with(
        define_stage(id="price", input=Line, output=Priced, execute=price),
        map=MapSpec(over=("input", "lines"), at_most=5),
        input_source=InputSource.ITEM,
        concurrency=ConcurrencyLimit(max=2, per=("input", "customer")),
        rate=RateLimit(max=1000, shared="pricing-api"),
    )
    total = _with(
        define_stage(id="total", input=None, output=Total, execute=add_up, needs=["price"]),
        queue="reports",
    )
    return WorkflowBuilder("orders", "Orders", input=Order).pipe(mapped).pipe(total).build()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    async with kernel_on_storage(request.param, [orders()], tmp_path) as kernel:
        yield kernel


async def _start(tk: TestKernel, customer: str, lines: int) -> str:
    run_id = await tk.create_run(
        "orders", {"customer": customer, "lines": [{"line": n} for n in range(lines)]}
    )
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1"))
    return run_id


async def _running(tk: TestKernel) -> list[JobRecord]:
    return [job for job in await tk.all_jobs() if job.status is Status.RUNNING]


def test_records_and_plans_name_the_same_default_queue() -> None:
    assert records.DEFAULT_QUEUE == plan.DEFAULT_QUEUE


async def test_jobs_carry_their_stage_queue_and_limits_resolved_per_run(tk: TestKernel) -> None:
    acme = await _start(tk, "acme", 3)
    await _start(tk, "globex", 3)
    pending = [job for job in await tk.all_jobs() if job.status is Status.PENDING]
    keys = {job.concurrency_key for job in pending}
    assert keys == {'concurrency:orders:price:"acme"', 'concurrency:orders:price:"globex"'}
    assert {(j.concurrency_max, j.rate_key, j.rate_max, j.queue) for j in pending} == {
        (2, "rate:pricing-api", 1000, "default")
    }
    leased = await tk.jobs.dequeue(10)
    # Two items per customer at once, though each run queued three.
    assert sorted(job.run_id for job in leased).count(acme) == 2 and len(leased) == 4


async def test_a_per_key_limit_holds_while_runs_execute_and_items_carry_it(
    tk: TestKernel,
) -> None:
    runs = [await _start(tk, customer, 6) for customer in ("acme", "acme", "globex")]
    most: dict[str, int] = {}
    while True:
        leased = await tk.jobs.dequeue(10, queues=["default"])
        if not leased:
            break
        for key in {job.concurrency_key for job in leased}:
            running = [j for j in await _running(tk) if j.concurrency_key == key]
            most[str(key)] = max(most.get(str(key), 0), len(running))
        for job in leased:
            await process_job(tk.kernel, job)
    assert most == {'concurrency:orders:price:"acme"': 2, 'concurrency:orders:price:"globex"': 2}
    # Every item's job, the later ones queued by earlier items, kept its run's key.
    item_jobs = [job for job in await tk.all_jobs() if job.stage_id == "price"]
    assert len(item_jobs) == 18
    assert {job.concurrency_key for job in item_jobs} == set(most)
    # `total` is on the `reports` queue: a worker of the default queue left it alone.
    waiting = [job for job in await tk.all_jobs() if job.status is Status.PENDING]
    assert {(job.stage_id, job.queue) for job in waiting} == {("total", "reports")}
    for job in await tk.jobs.dequeue(10, queues=["reports"]):
        await process_job(tk.kernel, job)
    for run_id in runs:
        run = await tk.persistence.get_run(run_id)
        assert run is not None and run.status is Status.COMPLETED
        assert run.output == {"total": sum(n * 10 for n in range(6))}
