"""PostgreSQL: an item handed on to the worker that ran the one before it costs two
statements — its row started, and its outcome with the next item's job — and neither
locks the run's row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.databases import postgres_database
from tests.kernel.helpers import Item, mapped
from wfc.runtime.adapters.sql import SqlStorage, direct, open_storage
from wfc.runtime.commands import RunClaimPending, RunCreate
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import Status
from wfc.testing import FakeClock, SlotTaker, make_test_kernel

COUNT = 400  # a progress event every 20 items: items 1 to 19 report none


async def touch(ctx: Any) -> Item:
    return Item(n=ctx.input.n + 1)


@pytest.fixture
async def served() -> AsyncIterator[tuple[SqlStorage, Kernel]]:
    async with postgres_database() as url:
        clock = FakeClock()
        storage = open_storage(url, clock=clock)
        yield (
            storage,
            make_test_kernel(mapped(touch, at_most=1), clock=clock, storage=storage).kernel,
        )
        await storage.close()


async def test_a_handed_item_costs_two_statements_and_never_locks_the_run(
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
    # 19 start warm, as item 1 hands them on. Before: 7 statements each.
    counts = [len(sent_by_item[index]) for index in range(20)]
    assert counts[2:] == [2] * 18, counts
    for index in range(2, 20):
        start, outcome = (" ".join(sql.split()) for sql in sent_by_item[index])
        assert start.startswith("INSERT INTO items")
        assert outcome.startswith("WITH wfc_stage AS ( UPDATE stages")
        assert "UPDATE runs" not in outcome
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
