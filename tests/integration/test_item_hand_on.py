"""An item handed on to the worker that ran the one before it: on PostgreSQL two
statements — its row started, and its outcome with the next item's job — on SQLite
its start and one transaction of the same four writes; neither locks the run's row.
And the write is fenced on each of its rows, on both: whichever moved on, nothing is
written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.databases import postgres_database, sql_storage
from tests.kernel.helpers import Item, mapped
from wfc.runtime.adapters.sql import SqlStorage, direct, open_storage
from wfc.runtime.commands import RunClaimPending, RunCreate
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.job_records import ItemHandOn
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import ItemRecord, StageFence, Status
from wfc.testing import FakeClock, SlotTaker, make_test_kernel
from wfc.testing.conformance import a_job, a_run, a_stage

COUNT = 400  # a progress event every 20 items: items 1 to 19 report none


async def touch(ctx: Any) -> Item:
    return Item(n=ctx.input.n + 1)


# What a handed item sends, after its start (`INSERT INTO items`), on each store.
HAND_ON = {
    "postgres": ["WITH wfc_stage AS ( UPDATE stages"],
    "sqlite": [
        "BEGIN IMMEDIATE",
        "UPDATE stages SET items_done = items_done + 1",
        "UPDATE items SET status = 'COMPLETED'",
        "UPDATE jobs SET status = 'COMPLETED'",
        "INSERT INTO jobs",
        "COMMIT",
    ],
}


@pytest.fixture(params=["sqlite", "postgres"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SqlStorage, Kernel]]:
    clock = FakeClock()
    workflow = mapped(touch, at_most=1)
    if request.param == "sqlite":
        storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=clock)
        await storage.create_schema()
        yield storage, make_test_kernel(workflow, clock=clock, storage=storage).kernel
        await storage.close()
        return
    async with postgres_database() as url:
        storage = open_storage(url, clock=clock)
        yield storage, make_test_kernel(workflow, clock=clock, storage=storage).kernel
        await storage.close()


async def test_a_handed_item_is_its_start_and_one_write_and_never_locks_the_run(
    served: tuple[SqlStorage, Kernel],
) -> None:
    store, kernel = served
    items = [{"n": n} for n in range(COUNT)]
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="mapped", input={"items": items})
    )
    taker = SlotTaker(1)
    with handing_off_to(taker):
        await kernel.dispatch(RunClaimPending(worker_id="w"))
    sent_by_item: dict[int, list[str]] = {}
    while taker.taken and len(sent_by_item) < 20:
        (job,), taker.taken = taker.taken, []
        with direct.watching(store.engine) as sent, handing_off_to(taker):
            assert (await process_job(kernel, job)).outcome == "completed"
        sent_by_item[job.payload["item"]] = list(sent)
    assert list(sent_by_item) == list(range(20))  # each queued the next, handed on
    # Item 0 reports progress (under the run's lock) and hands item 1 on cold; items 2 to
    # 19 start warm, as item 1 hands them on. Before: 7 statements each on PostgreSQL, 10
    # on SQLite.
    expected = HAND_ON[store.engine.dialect.name.replace("postgresql", "postgres")]
    for index in range(2, 20):
        start, *outcome = (" ".join(sql.split()) for sql in sent_by_item[index])
        assert start.startswith("INSERT INTO items"), sent_by_item[index]
        assert len(outcome) == len(expected), sent_by_item[index]
        assert all(sql.startswith(begins) for sql, begins in zip(outcome, expected, strict=True))
        assert not any("UPDATE runs" in sql for sql in outcome)
    row = next(
        r
        for r in await store.persistence.stages_of_run(created.workflow_run_id)
        if r.stage_id == "touch"
    )
    assert (row.status, row.items_done, row.items_next) == (Status.RUNNING, 20, 21)
    done = await store.persistence.items_of_stage(created.workflow_run_id, "touch")
    assert [(i.item_index, i.status, i.output) for i in done] == [
        (index, Status.COMPLETED, {"n": index + 1}) for index in range(20)
    ]
    jobs = await store.jobs.jobs_of_run(created.workflow_run_id)
    assert sorted(j.payload["item"] for j in jobs if j.status is Status.COMPLETED) == list(
        range(20)
    )


MOVES = ("run", "stage", "item", "job")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_hand_on_writes_nothing_when_any_of_its_rows_moved_on(
    kind: str, tmp_path: Path
) -> None:
    """For each row the write is fenced on, a run where that row moved on (one database
    for all: a run each): nothing written. And the write where none did."""
    async with sql_storage(kind, tmp_path) as store:
        for moved in (*MOVES, "nothing"):
            await _hand_on_after(store, moved)


async def _hand_on_after(store: SqlStorage, moved: str) -> None:
    p, clock, run_id = store.persistence, FakeClock(), f"r-{moved}"
    await p.create_run(a_run(clock, run_id, status=Status.RUNNING))
    stage = replace(
        a_stage(clock, run_id, "m"),
        status=Status.RUNNING,
        items_total=10,
        items_queued=10,
        items_next=2,
    )
    row = await p.upsert_stage(stage, {})
    now = clock.now()
    first = ItemRecord(
        id=f"{run_id}/m/0",
        run_id=run_id,
        stage_id="m",
        item_index=0,
        status=Status.RUNNING,
        created_at=now,
        updated_at=now,
        attempt=1,
    )
    item = await p.start_item(first, {}, StageFence.item_startable(1, 0))
    assert item is not None
    await store.jobs.enqueue([a_job(run_id, "m")])
    [job] = await store.jobs.dequeue(1)
    if moved == "run":
        await p.update_run(run_id, {"status": Status.CANCELLED})
    elif moved == "stage":
        await p.update_stage(row.id, {"generation": 1})
    elif moved == "item":  # a later delivery started it
        await p.update_item(item.id, {"attempt": 2}, fence=StageFence.running(1))
    elif moved == "job":  # its lease reaped, and the job delivered again
        await store.jobs.release(job.id)
        await store.jobs.dequeue(1)
    hand_on = ItemHandOn(
        run_id=run_id,
        record_id=row.id,
        generation=0,
        item_id=item.id,
        attempt=1,
        output={"n": 1},
        metrics={},
        duration_ms=1,
        job_id=job.id,
        job_attempt=1,
        next_job=replace(a_job(run_id, "m"), payload={"item": -1}),
        next_job_id=f"{run_id}-next",
        now=now,
    )
    index = await p.hand_on_item(hand_on, store.jobs)
    [stored] = await p.items_of_stage(run_id, "m")
    [counted] = await p.stages_of_run(run_id)
    queued = {j.id: j for j in await store.jobs.jobs_of_run(run_id)}
    if moved == "nothing":
        assert index == 2 and stored.status is Status.COMPLETED
        assert (counted.items_done, counted.items_next) == (1, 3)
        assert queued[hand_on.next_job_id].payload == {"item": 2}
        assert queued[job.id].status is Status.COMPLETED
        return
    assert (index, stored.status) == (None, Status.RUNNING), moved
    assert (counted.items_done, counted.items_next) == (0, 2), moved
    assert hand_on.next_job_id not in queued, moved
    assert queued[job.id].status is not Status.COMPLETED, moved
