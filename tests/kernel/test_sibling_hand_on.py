"""A parallel sibling that finishes before the last hands its worker the next pending
sibling, started in its outcome's transaction: on memory, SQLite and PostgreSQL the
group runs through one worker's slot without a dequeue or a start transaction per
sibling, and the start is fenced like any."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import text

from tests.databases import kernel_on_storage
from tests.kernel.helpers import event_types, run_of, start, step
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.adapters.sql import SqlPersistence, direct
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.job_records import JobRecord
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import SlotTaker, TestKernel

WIDTH = 4


class Number(BaseModel):
    n: int


def _plus_index(index: int) -> Any:
    """A sibling's body: the run's input plus its index."""

    def run(ctx: Any) -> Number:
        return Number(n=ctx.input.n + index)

    return run


def _fan(sibling: Callable[[int], Any] = _plus_index) -> Workflow:
    """a → [b1..b4] → c, sibling i running `sibling(i)`, c summing the siblings."""

    def total(ctx: Any) -> Number:
        return Number(n=sum(ctx.require(f"b{i}")["n"] for i in range(1, WIDTH + 1)))

    return (
        WorkflowBuilder("fan", "One, four, one", input=Number)
        .pipe(define_stage(id="a", input=Number, output=Number, execute=lambda ctx: ctx.input))
        .parallel(
            [
                define_stage(id=f"b{i}", input=Number, output=Number, execute=sibling(i))
                for i in range(1, WIDTH + 1)
            ]
        )
        .pipe(define_stage(id="c", output=Number, execute=total))
        .build()
    )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    async with kernel_on_storage(request.param, [_fan()], tmp_path) as kernel:
        yield kernel


async def _process(tk: TestKernel, job: JobRecord, taker: SlotTaker) -> list[str]:
    """Process `job` as a worker with one slot would; the statements it sent (SQL only)."""
    taker.taken = []
    engine = tk.persistence.engine if isinstance(tk.persistence, SqlPersistence) else None
    if engine is None:
        with handing_off_to(taker):
            assert (await process_job(tk.kernel, job)).outcome == "completed"
        return []
    with direct.watching(engine) as sent, handing_off_to(taker):
        assert (await process_job(tk.kernel, job)).outcome == "completed"
    return [" ".join(sql.split()) for sql in sent]


async def test_a_finishing_sibling_hands_on_the_next_one(tk: TestKernel) -> None:
    """b1 is dequeued; on SQL stores every other sibling, and then c, comes handed from
    the one before: started RUNNING at its job's attempt with one `stage:started`, run
    once. In memory the job queue does not share the kernel's transaction: siblings are
    dequeued, as before, to the same end."""
    run_id = await start(tk, "fan", {"n": 10})
    await step(tk)  # a: opens b1..b4, queued PENDING (no taker)
    taker = SlotTaker(1)
    ran: list[tuple[str, bool]] = []
    while True:
        handed = bool(taker.taken)
        jobs = taker.taken or await tk.jobs.dequeue()
        if not jobs:
            break
        (job,) = jobs
        assert job.status is Status.RUNNING
        if handed:
            row = await tk.persistence.get_stage(run_id, job.stage_id)
            assert row is not None and (row.status, row.attempt) == (Status.RUNNING, job.attempt)
        ran.append((job.stage_id, handed))
        await _process(tk, job, taker)
    assert sorted(stage for stage, _ in ran[:WIDTH]) == [f"b{i}" for i in range(1, WIDTH + 1)]
    on_sql = isinstance(tk.persistence, SqlPersistence)
    assert [handed for _, handed in ran] == [False, *[on_sql] * (WIDTH - 1), True]
    run = await run_of(tk, run_id)
    assert run.status is Status.COMPLETED and run.output == {"n": 4 * 10 + 1 + 2 + 3 + 4}
    events = await event_types(tk, run_id)
    assert events.count("stage:started") == WIDTH + 2 and events.count("workflow:completed") == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_sibling_started_by_a_later_delivery_is_left_to_it(
    kind: str, tmp_path: Path
) -> None:
    """The hand-on's start is fenced (`StageFence.startable`): a sibling whose row a later
    delivery took over keeps that delivery's attempt, and no start is recorded for it."""
    async with kernel_on_storage(kind, [_fan()], tmp_path) as tk:
        run_id = await start(tk, "fan", {"n": 0})
        await step(tk)
        (first,) = await tk.jobs.dequeue()
        # The siblings still queued look taken over by a fifth delivery each.
        for job in await tk.jobs.jobs_of_run(run_id):
            if job.status is Status.PENDING:
                row = await tk.persistence.get_stage(run_id, job.stage_id)
                assert row is not None
                await tk.persistence.update_stage(row.id, {"status": Status.RUNNING, "attempt": 5})
        taker = SlotTaker(1)
        await _process(tk, first, taker)
        (handed,) = taker.taken
        assert handed.attempt == 1
        kept = await tk.persistence.get_stage(run_id, handed.stage_id)
        assert kept is not None and (kept.status, kept.attempt) == (Status.RUNNING, 5)
        assert (await event_types(tk, run_id)).count("stage:started") == 2  # a, and the first


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_handed_sibling_sends_no_dequeue_no_start_and_no_read(
    kind: str, tmp_path: Path
) -> None:
    """Counted (the dequeue itself aside): a handed sibling starts warm and sends its
    outcome's transaction and nothing else, not even a read of its run or of `a`'s output;
    a dequeued one reads both, then sends a start transaction that locks the run (BEGIN,
    the lock and the start, its event, COMMIT: the lock and the start are one statement
    on PostgreSQL, two on SQLite, which also numbers the event in two statements)."""
    async with kernel_on_storage(kind, [_fan()], tmp_path) as tk:
        await start(tk, "fan", {"n": 0})
        await step(tk)
        taker = SlotTaker(1)
        (first,) = await tk.jobs.dequeue()
        dequeued = await _process(tk, first, taker)
        handed = await _process(tk, taker.taken[0], taker)
    begin = "BEGIN" if kind == "postgres" else "BEGIN IMMEDIATE"
    assert dequeued.count(begin) == 2 and handed.count(begin) == 1, (dequeued, handed)
    assert handed[0] == begin, handed  # no pre-flight read: the run and `a`'s output are known
    locks = [sql for sql in handed if "version=(runs.version" in sql]  # the run's lock
    assert len(locks) == 1, handed  # the outcome's; the start took none
    expected = {"sqlite": 8, "postgres": 6}[kind]
    assert len(dequeued) - len(handed) == expected, (dequeued, handed)


def _reading_a(index: int) -> Any:
    """A sibling's body returning `a`'s output plus its index, then changing the object it
    read: what a handed sibling sees must be `a`'s output as stored."""

    def run(ctx: Any) -> Number:
        seen = ctx.require("a")
        result = Number(n=seen["n"] + index)
        seen["n"] = -1000  # a body may change what it read; no later reader sees it
        return result

    return run


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_warm_sibling_sees_the_earlier_output_as_stored(kind: str, tmp_path: Path) -> None:
    """Each handed sibling's context comes from the one before it, whose body changed the
    objects it read: it still sees `a`'s output as stored, and its run's input."""
    async with kernel_on_storage(kind, [_fan(_reading_a)], tmp_path) as tk:
        run_id = await start(tk, "fan", {"n": 10})
        await step(tk)
        taker = SlotTaker(1)
        jobs = await tk.jobs.dequeue()
        handed = -1  # the first is dequeued
        while jobs:
            handed += 1
            await _process(tk, jobs[0], taker)
            jobs = list(taker.taken)
        run = await run_of(tk, run_id)
    assert handed == WIDTH  # b2, b3, b4 and c came handed
    assert run.status is Status.COMPLETED and run.output == {"n": 4 * 10 + 1 + 2 + 3 + 4}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_the_lease_completes_the_finishing_job_only_at_its_attempt(
    kind: str, tmp_path: Path
) -> None:
    """The finishing sibling's job is completed by the statement that leases the next one
    (on PostgreSQL; first, on its own, on SQLite), fenced on the attempt it holds: a job
    another delivery has leased since is left RUNNING at that delivery's attempt, while
    the job of a sibling that still holds its lease is completed."""
    async with kernel_on_storage(kind, [_fan()], tmp_path) as tk:
        run_id = await start(tk, "fan", {"n": 0})
        await step(tk)
        taker = SlotTaker(1)
        (first,) = await tk.jobs.dequeue()
        assert isinstance(tk.persistence, SqlPersistence)
        async with tk.persistence.engine.begin() as conn:  # leased again, not yet started
            await conn.execute(text(f"UPDATE jobs SET attempt = 2 WHERE id = '{first.id}'"))
        sent = await _process(tk, first, taker)
        (handed,) = taker.taken
        await _process(tk, handed, taker)
        jobs = {job.id: job for job in await tk.jobs.jobs_of_run(run_id)}
    assert (jobs[first.id].status, jobs[first.id].attempt) == (Status.RUNNING, 2)
    assert jobs[handed.id].status is Status.COMPLETED
    if kind == "postgres":  # no statement of its own: it travels with the lease
        assert not [sql for sql in sent if sql.startswith("UPDATE jobs SET status")], sent
