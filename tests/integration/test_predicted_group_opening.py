"""PostgreSQL: a stage alone in its group that opens a parallel group commits as one
statement, the group's new stage rows inserted side by side in it (each only adds a row:
one already there fails the statement, and the kernel does the transaction reading)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import postgres_store
from tests.integration.handed_seq3 import kernel_on
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.adapters.sql import SqlStorage, direct
from wfc.runtime.commands import RunClaimPending, RunCreate
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import Status
from wfc.testing import FakeClock, SlotTaker
from wfc.testing.conformance import a_stage

WIDTH = 4


class Number(BaseModel):
    n: int


BEFORE_OPENING: list[Any] = []
"""What `a` does before it returns; a test appends, the fixture clears."""


async def _first(ctx: Any) -> Number:
    for action in BEFORE_OPENING:
        await action(ctx)
    return Number(n=ctx.input.n)


def _sibling(index: int) -> Any:
    def run(ctx: Any) -> Number:
        return Number(n=ctx.input.n + index)

    return run


def _total(ctx: Any) -> Number:
    return Number(n=sum(ctx.require(f"b{i}")["n"] for i in range(1, WIDTH + 1)))


@pytest.fixture
async def store() -> AsyncIterator[SqlStorage]:
    async with postgres_store(BEFORE_OPENING) as storage:
        yield storage


def _kernel(store: SqlStorage) -> Kernel:
    """a → [b1..b4] → c on `store`."""
    fan = (
        WorkflowBuilder("fan", "One, four, one", input=Number)
        .pipe(define_stage(id="a", input=Number, output=Number, execute=_first))
        .parallel(
            [
                define_stage(id=f"b{i}", input=Number, output=Number, execute=_sibling(i))
                for i in range(1, WIDTH + 1)
            ]
        )
        .pipe(define_stage(id="c", output=Number, execute=_total))
        .build()
    )
    return kernel_on(store, fan)


async def _run_a(store: SqlStorage, kernel: Kernel, taker: SlotTaker) -> tuple[str, list[str]]:
    """Create and claim a fan run, `a` handed to `taker`; run `a`: the run's id and the
    statements of `a`'s execution."""
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="fan", input={"n": 1})
    )
    with handing_off_to(taker):
        await kernel.dispatch(RunClaimPending(worker_id="w"))
    (job,), taker.taken = taker.taken, []
    with direct.watching(store.engine) as sent, handing_off_to(taker):
        assert (await process_job(kernel, job)).outcome == "completed"
    return created.workflow_run_id, list(sent)


async def _finish(store: SqlStorage, kernel: Kernel, taker: SlotTaker, run_id: str) -> None:
    """Run the rest of the run, handed jobs first, then queued ones; it completes."""
    while True:
        leased = taker.taken or await store.jobs.dequeue(1)
        if not leased:
            break
        job, taker.taken = leased[0], leased[1:] if taker.taken else taker.taken
        with handing_off_to(taker):
            assert (await process_job(kernel, job)).outcome == "completed"
    run = await store.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED and run.output == {"n": 14}
    events = await store.persistence.outbox_of_run(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert {j.status for j in await store.jobs.jobs_of_run(run_id)} == {Status.COMPLETED}


@pytest.mark.parametrize("slots", [WIDTH + 1, 2])
async def test_opening_a_parallel_group_is_one_statement(store: SqlStorage, slots: int) -> None:
    """Its four new rows are four inserts into `stages` in one statement (before: BEGIN,
    the lock, four inserts, the jobs, COMMIT: eight round trips, six under the run's lock).
    With fewer slots than siblings, the rest are queued PENDING in the same statement."""
    kernel = _kernel(store)
    taker = SlotTaker(slots)
    run_id, sent = await _run_a(store, kernel, taker)
    assert len(sent) == 1 and " ".join(sent[0].split()).startswith("WITH wfc_locked AS")
    rows = await store.persistence.stages_of_run(run_id)
    opened = {r.stage_id: r.status for r in rows if r.stage_id.startswith("b")}
    started = sum(status is Status.RUNNING for status in opened.values())
    assert sorted(opened) == [f"b{i}" for i in range(1, WIDTH + 1)]
    assert started == len(taker.taken) == min(slots, WIDTH)
    await _finish(store, kernel, taker, run_id)


async def test_a_sibling_row_there_already_fails_the_statement_and_it_is_read(
    store: SqlStorage,
) -> None:
    """A row of the group there before it opens (an orphan a crash left): its insert fails
    the one statement whole, and the transaction runs again reading, keeping that row."""
    kernel = _kernel(store)
    clock = FakeClock()
    seen: list[str] = []

    async def orphan(ctx: Any) -> None:
        await store.persistence.upsert_stage(a_stage(clock, ctx.run_id, "b3", group=2), {})
        seen.append("orphan")

    BEFORE_OPENING.append(orphan)
    taker = SlotTaker(WIDTH + 1)
    run_id, sent = await _run_a(store, kernel, taker)
    assert seen == ["orphan"]
    words = [" ".join(s.split()) for s in sent]
    assert words[1].startswith("WITH wfc_locked AS") and words[2] == "BEGIN"  # then read
    b3 = await store.persistence.get_stage(run_id, "b3")
    assert b3 is not None and b3.status is Status.PENDING  # kept, not started twice
    await _finish(store, kernel, taker, run_id)
