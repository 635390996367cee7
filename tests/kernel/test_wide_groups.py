"""A parallel group of 64 stages, on memory, SQLite and PostgreSQL.

The group completes once and the next group opens once, whichever sibling
finishes last and however many finish at the same moment; the stage after the
group sees every sibling's output; a sibling's context holds the groups before
its own, never a sibling's output. What a sibling's outcome costs does not
grow with the group's width: before the last, each sends the same statements
at width 4 as at width 64 (counted, never timed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import kernel_on_storage
from tests.kernel.helpers import event_types, execute, run_of, start, step
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.adapters.sql import SqlPersistence, direct
from wfc.runtime.commands import JobExecuteResult
from wfc.runtime.hosts import process_job
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel

WIDE = 64


class Number(BaseModel):
    n: int


class Seen(BaseModel):
    n: int
    context: list[str]  # the stage ids in the sibling's workflow context


class Total(BaseModel):
    total: int
    siblings: int


def fan(width: int, barrier: list[asyncio.Barrier] | None = None) -> Workflow:
    """`fan<width>`: a → [b1..b<width>] → c; each b says what its context held, c sums
    the group's output. With `barrier`, every b waits for all of them before it returns,
    so their outcome transactions overlap."""

    def first(ctx: Any) -> Number:
        return Number(n=ctx.input.n)

    def sibling(index: int) -> Any:
        async def run(ctx: Any) -> Seen:
            if barrier:
                await barrier[0].wait()
            ids = ["a", *(f"b{i}" for i in range(1, width + 1))]
            context = [sid for sid in ids if ctx.optional(sid) is not None]
            return Seen(n=ctx.input.n + index, context=context)

        return run

    def last(ctx: Any) -> Total:
        seen = [Seen.model_validate(ctx.require(f"b{i}")) for i in range(1, width + 1)]
        return Total(total=sum(s.n for s in seen), siblings=len(seen))

    return (
        WorkflowBuilder(f"fan{width}", f"One, {width}, one", input=Number)
        .pipe(define_stage(id="a", input=Number, output=Number, execute=first))
        .parallel(
            [
                define_stage(id=f"b{i}", input=Number, output=Seen, execute=sibling(i))
                for i in range(1, width + 1)
            ]
        )
        .pipe(define_stage(id="c", output=Total, execute=last))
        .build()
    )


# Empty but while a test makes the siblings wait for each other (read as the bodies run).
BARRIER: list[asyncio.Barrier] = []


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    workflows = [fan(4), fan(WIDE, BARRIER)]
    async with kernel_on_storage(request.param, workflows, tmp_path) as kernel:
        yield kernel


async def _siblings_one_by_one(tk: TestKernel, run_id: str) -> list[JobExecuteResult]:
    results = []
    for _ in range(WIDE):
        (job,) = await tk.jobs.dequeue()
        assert job.stage_id.startswith("b")
        results.append(await tk.kernel.dispatch(execute(job)))
    return results


async def test_a_wide_group_completes_once_and_opens_the_next_group_once(tk: TestKernel) -> None:
    run_id = await start(tk, f"fan{WIDE}", {"n": 0})
    await step(tk)  # a: opens the 64 siblings
    results = await _siblings_one_by_one(tk, run_id)
    actions = [r.transition.action if r.transition else None for r in results]
    assert actions == ["noop"] * (WIDE - 1) + ["advanced"]
    assert [j.stage_id for j in await tk.jobs.jobs_of_run(run_id)].count("c") == 1
    assert (await step(tk)).outcome == "completed"  # c
    run = await run_of(tk, run_id)
    assert run.status is Status.COMPLETED
    assert run.output == {"total": sum(range(1, WIDE + 1)), "siblings": WIDE}
    assert (await event_types(tk, run_id)).count("workflow:completed") == 1


async def test_a_sibling_sees_the_groups_before_its_own_and_no_sibling(tk: TestKernel) -> None:
    """Siblings finishing one after the other: even the last to start has only `a` in its
    context, so what a stage sees does not depend on which siblings finished first."""
    run_id = await start(tk, f"fan{WIDE}", {"n": 0})
    await step(tk)
    await _siblings_one_by_one(tk, run_id)
    stages = await tk.persistence.stages_of_run(run_id)
    siblings = [row for row in stages if row.stage_id.startswith("b")]
    assert len(siblings) == WIDE
    for row in siblings:
        assert row.output_ref is not None
        assert Seen.model_validate_json(await tk.blobs.get(row.output_ref)).context == ["a"]


async def test_siblings_finishing_together_advance_the_run_exactly_once(tk: TestKernel) -> None:
    """All 64 bodies return at the same moment, so their outcome transactions overlap."""
    BARRIER[:] = [asyncio.Barrier(WIDE)]
    run_id = await start(tk, f"fan{WIDE}", {"n": 0})
    await step(tk)
    jobs = await tk.jobs.dequeue(WIDE)
    assert len(jobs) == WIDE
    try:
        results = await asyncio.gather(*(tk.kernel.dispatch(execute(job)) for job in jobs))
    finally:
        BARRIER.clear()
    actions = sorted(r.transition.action if r.transition else "none" for r in results)
    assert actions == ["advanced"] + ["noop"] * (WIDE - 1)
    assert [j.stage_id for j in await tk.jobs.jobs_of_run(run_id)].count("c") == 1
    await step(tk)
    assert (await run_of(tk, run_id)).output == {"total": sum(range(1, WIDE + 1)), "siblings": WIDE}


async def _statements_per_sibling(tk: TestKernel, width: int) -> list[int]:
    """The statements each sibling's job sends, dequeued and processed one at a time."""
    assert isinstance(tk.persistence, SqlPersistence)
    engine = tk.persistence.engine
    run_id = await start(tk, f"fan{width}", {"n": width})
    await step(tk)
    sent = []
    for _ in range(width):
        with direct.watching(engine) as statements:
            (job,) = await tk.jobs.dequeue()
            await process_job(tk.kernel, job)
        sent.append(len(statements))
    assert (await step(tk)).outcome == "completed"  # c
    assert (await run_of(tk, run_id)).status is Status.COMPLETED
    return sent


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_siblings_statements_do_not_grow_with_its_groups_width(
    kind: str, tmp_path: Path
) -> None:
    async with kernel_on_storage(kind, [fan(4), fan(WIDE)], tmp_path) as tk:
        narrow = await _statements_per_sibling(tk, 4)
        wide = await _statements_per_sibling(tk, WIDE)
    # Every sibling before the last: the same statements whatever the width.
    assert set(wide[:-1]) == set(narrow[:-1]), (narrow, wide)
    # The last reads the group once and opens the next one: more, but not per sibling.
    assert wide[-1] == narrow[-1], (narrow, wide)


async def test_the_ports_answer_a_sibling_without_its_siblings_rows(tk: TestKernel) -> None:
    """`run_with_stages(for_stage=)` leaves a sibling's siblings out (the run still comes
    back, with its earlier groups), and `count_active_stages` counts what is left to run."""
    run_id = await start(tk, f"fan{WIDE}", {"n": 0})
    assert await tk.persistence.count_active_stages(run_id) == 1  # a, queued
    await step(tk)
    assert await tk.persistence.count_active_stages(run_id) == WIDE
    found = await tk.persistence.run_with_stages(run_id, for_stage=("b3", 2))
    assert found is not None
    run, rows = found
    assert run.id == run_id and run.input == {"n": 0}
    assert [row.stage_id for row in rows] == ["a", "b3"]
    before_any = await tk.persistence.run_with_stages(run_id, for_stage=("a", 1))
    assert before_any is not None and [row.stage_id for row in before_any[1]] == ["a"]
    await _siblings_one_by_one(tk, run_id)
    assert await tk.persistence.count_active_stages(run_id) == 1  # c, opened
    await step(tk)
    assert await tk.persistence.count_active_stages(run_id) == 0
    assert await tk.persistence.count_active_stages("no-such-run") == 0
    assert await tk.persistence.run_with_stages("no-such-run", for_stage=("a", 1)) is None
