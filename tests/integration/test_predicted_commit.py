"""PostgreSQL: a stage alone in its group commits its outcome and the run's transition as one
statement, predicted from what the stage started with — and a prediction that no longer
holds fails that statement whole, after which the kernel does the transaction reading."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from tests.databases import postgres_database
from wfc.errors import ExpectationFailed
from wfc.runtime import StageDefinition, WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory import CollectingEventSink, SequentialIds
from wfc.runtime.adapters.sql import SqlStorage, direct, open_storage
from wfc.runtime.commands import RunClaimPending, RunCreate
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import Status
from wfc.runtime.registry import WorkflowMap
from wfc.testing import FakeClock, SlotTaker
from wfc.testing.conformance import (
    MOVES,
    Ports,
    a_run,
    a_running_stage,
    a_stage,
    an_event,
    move_under,
)


class Number(BaseModel):
    n: int


_BEFORE_OUTCOME: list[Any] = []  # what a stage does just before it returns (per test)


async def add_one(ctx: Any) -> Number:
    for action in _BEFORE_OUTCOME:
        await action(ctx)
    return Number(n=ctx.input.n + 1)


def _stage(stage_id: str) -> StageDefinition:
    return define_stage(id=stage_id, input=Number, output=Number, execute=add_one)


@pytest.fixture
async def store() -> AsyncIterator[SqlStorage]:
    async with postgres_database() as url:
        storage = open_storage(url, clock=FakeClock())
        yield storage
        await storage.close()
    _BEFORE_OUTCOME.clear()


def _clock(store: SqlStorage) -> FakeClock:
    """The fake clock the store was opened with."""
    clock = store.persistence._clock
    assert isinstance(clock, FakeClock)
    return clock


def _kernel(store: SqlStorage) -> Kernel:
    seq3 = (
        WorkflowBuilder("seq3", "Three in a row", input=Number)
        .pipe(_stage("a"))
        .pipe(_stage("b"))
        .pipe(_stage("c"))
        .build()
    )
    return Kernel(
        persistence=store.persistence,
        blobs=store.blobs,
        jobs=store.jobs,
        events=CollectingEventSink(),
        clock=FakeClock(),
        ids=SequentialIds("id"),
        registry=WorkflowMap([seq3]),
        pinning=store.pinning,
        shared_transactions=store.shared_transactions,
    )


def _words(sql: str) -> str:
    return " ".join(sql.replace("(", "( ").split())


async def _run_handing_on(
    store: SqlStorage, kernel: Kernel, *, outcomes: list[str] | None = None
) -> tuple[str, list[list[str]]]:
    """Create and claim a seq3 run, then run each stage handed to one slot; the run's id and
    the statements of each stage execution. Each must complete, unless `outcomes` collects
    them."""
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="seq3", input={"n": 0})
    )
    taker = SlotTaker(1)
    with handing_off_to(taker):
        await kernel.dispatch(RunClaimPending(worker_id="w"))
    per_stage = []
    while taker.taken:
        (job,), taker.taken = taker.taken, []
        with direct.watching(store.engine) as sent, handing_off_to(taker):
            outcome = await process_job(kernel, job)
        if outcomes is None:
            assert outcome.outcome == "completed"
        else:
            outcomes.append(outcome.outcome)
        per_stage.append(list(sent))
    return created.workflow_run_id, per_stage


async def test_each_handed_stage_costs_one_statement(store: SqlStorage) -> None:
    kernel = _kernel(store)
    run_id, per_stage = await _run_handing_on(store, kernel)
    assert [len(sent) for sent in per_stage] == [1, 1, 1]  # before: 5, 5 and 6
    assert all(_words(sent[0]).startswith("WITH wfc_locked AS ( UPDATE runs") for sent in per_stage)
    run = await store.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED and run.output == {"n": 3}
    stages = await store.persistence.stages_of_run(run_id)
    assert [(s.stage_id, s.status, s.attempt) for s in stages] == [
        ("a", Status.COMPLETED, 1),
        ("b", Status.COMPLETED, 1),
        ("c", Status.COMPLETED, 1),
    ]
    assert {j.status for j in await store.jobs.jobs_of_run(run_id)} == {Status.COMPLETED}
    events = await store.persistence.outbox_of_run(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event_type == "workflow:completed"


async def test_a_run_that_moved_while_its_stage_ran_is_written_the_reading_way(
    store: SqlStorage,
) -> None:
    """The run's version moves under stage b (an update of the run's own, as a cancel or
    a rerun would make): the one statement finds another version and writes nothing, and
    the transaction runs again reading — the run still completes, nothing twice."""
    kernel = _kernel(store)

    async def moves_the_run(ctx: Any) -> None:
        if ctx.stage_id == "b":
            await store.persistence.update_run(ctx.run_id, {})

    _BEFORE_OUTCOME.append(moves_the_run)
    run_id, per_stage = await _run_handing_on(store, kernel)
    moving, failed, *reading = per_stage[1]
    assert moving.startswith("UPDATE runs")  # the stage's own, on the job's connection
    assert _words(failed).startswith("WITH wfc_locked") and reading[0] == "BEGIN"
    assert reading[-1] == "COMMIT"
    assert [len(sent) for sent in (per_stage[0], per_stage[2])] == [1, 1]
    run = await store.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED and run.output == {"n": 3}
    assert [j.status for j in await store.jobs.jobs_of_run(run_id)] == [Status.COMPLETED] * 3
    events = await store.persistence.outbox_of_run(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    completed = [e.payload.get("stage_id") for e in events if e.event_type == "stage:completed"]
    assert completed == ["a", "b", "c"]


async def test_a_run_cancelled_while_its_stage_ran_keeps_nothing_of_it(store: SqlStorage) -> None:
    kernel = _kernel(store)

    async def cancels(ctx: Any) -> None:
        if ctx.stage_id == "b":
            await store.persistence.update_run(ctx.run_id, {"status": Status.CANCELLED})

    _BEFORE_OUTCOME.append(cancels)
    outcomes: list[str] = []
    run_id, per_stage = await _run_handing_on(store, kernel, outcomes=outcomes)
    assert outcomes == ["completed", "failed"]  # b's outcome came too late to count
    assert _words(per_stage[1][1]).startswith("WITH wfc_locked")  # tried, then read
    run = await store.persistence.get_run(run_id)
    assert run is not None and run.status is Status.CANCELLED
    stages = await store.persistence.stages_of_run(run.id)
    assert [s.stage_id for s in stages] == ["a", "b"]  # no c: the outcome was not written
    assert stages[1].status is Status.RUNNING and stages[1].output_ref is None
    assert await store.blobs.list(f"runs/seq3/{run.id}/b/") == []


@pytest.mark.parametrize("moved", MOVES)
async def test_a_wrong_prediction_fails_its_one_statement_whole(
    store: SqlStorage, moved: str
) -> None:
    ports = Ports(_clock(store), store.persistence, store.jobs, store.blobs, store.ai_calls)
    clock, p = ports.clock, store.persistence
    run, row, leased = await a_running_stage(ports)
    job_id = await move_under(ports, moved, row, leased)
    before = (await p.get_run("r1"), await p.stages_of_run("r1"), await p.outbox_of_run("r1"))
    with direct.watching(store.engine) as sent, pytest.raises(ExpectationFailed):
        async with p.transaction() as tx:
            await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
            )
            await store.blobs.put("r1/a/output", b"{}")
            await tx.upsert_stage(a_stage(clock, "r1", "b", group=2, number=2), {})
            await store.jobs.complete(job_id)
            await tx.update_run(
                "r1", {"status": Status.COMPLETED}, expected_version=run.version + 1
            )
            await tx.append_outbox([an_event(clock, "e2", "r1")])
    assert len(sent) == 1  # the one statement, and neither BEGIN nor ROLLBACK
    after = (await p.get_run("r1"), await p.stages_of_run("r1"), await p.outbox_of_run("r1"))
    assert after == before
    assert await store.blobs.list("r1/") == []
    assert {j.id: j.status for j in await store.jobs.jobs_of_run("r1")} == {leased: Status.RUNNING}


async def test_a_read_in_a_predicting_transaction_fails_it_before_anything_is_sent(
    store: SqlStorage,
) -> None:
    clock = FakeClock()
    p = store.persistence
    await p.create_run(a_run(clock, "r1", status=Status.RUNNING))
    row = await p.upsert_stage(a_stage(clock, "r1", "a"), {"status": Status.RUNNING})
    run = await p.get_run("r1")
    assert run is not None
    with direct.watching(store.engine) as sent, pytest.raises(ExpectationFailed):
        async with p.transaction() as tx:
            await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
            )
            await store.blobs.put("r1/a/output", b"{}")
            await tx.stages_of_run("r1")
    assert sent == []
    assert await p.get_stage("r1", "a") == row and await store.blobs.list("r1/") == []


async def test_a_lost_connection_is_not_taken_for_a_wrong_prediction(
    store: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the ways the statement checks its predictions make the kernel do it again
    reading; any other error (a connection gone mid-statement, which may have committed)
    is the caller's, as for any transaction: the job's lease is reaped and it runs again."""
    ports = Ports(_clock(store), store.persistence, store.jobs, store.blobs, store.ai_calls)
    run, row, _ = await a_running_stage(ports)

    class ConnectionGone(Exception):
        sqlstate = "08006"

    async def gone(*_args: Any, **_kwargs: Any) -> Any:
        raise DBAPIError("WITH wfc_locked …", [], ConnectionGone())

    with pytest.raises(DBAPIError) as raised:
        async with store.persistence.transaction() as tx:
            await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
            )
            monkeypatch.setattr(direct, "_on_driver", gone)
    assert not isinstance(raised.value, ExpectationFailed)
    assert isinstance(raised.value.orig, ConnectionGone)
