"""SQLite: a stage alone in its group writes its run once — the lock, the run's own updates
and the outbox counter in one statement (`sqlite_run_lock`) — and a run that moved while
the stage ran fails that statement, after which the kernel does the transaction reading."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

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
from wfc.testing.conformance import MOVES, Ports, a_running_stage, a_stage, an_event, move_under


class Count(BaseModel):
    n: int


_BEFORE_RETURN: list[Any] = []  # what a stage does just before it returns (per test)


async def plus_one(ctx: Any) -> Count:
    for action in _BEFORE_RETURN:
        await action(ctx)
    return Count(n=ctx.input.n + 1)


def _stage(stage_id: str) -> StageDefinition:
    return define_stage(id=stage_id, input=Count, output=Count, execute=plus_one)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=FakeClock())
    await storage.prepare()
    yield storage
    await storage.close()
    _BEFORE_RETURN.clear()


def _kernel(store: SqlStorage) -> Kernel:
    seq3 = (
        WorkflowBuilder("seq3", "Three in a row", input=Count)
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


async def _run_handing_on(
    store: SqlStorage, kernel: Kernel, *, outcomes: list[str] | None = None
) -> tuple[str, list[list[str]]]:
    """Create and claim a seq3 run, then run each stage handed to one slot: the run's id and
    the statements of each stage execution (each must complete unless `outcomes` is given)."""
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


def _run_writes(sent: list[str]) -> list[str]:
    return [sql for sql in sent if sql.startswith("UPDATE runs")]


async def test_each_handed_stage_writes_its_run_once(store: SqlStorage) -> None:
    run_id, per_stage = await _run_handing_on(store, _kernel(store))
    # Before: the lock, then the outbox counter (and, for the last stage, the completion
    # between them): 2, 2 and 3 writes of the run.
    assert [len(_run_writes(sent)) for sent in per_stage] == [1, 1, 1]
    assert all("last_sequence" in _run_writes(sent)[0] for sent in per_stage)
    run = await store.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED and run.output == {"n": 3}
    assert {j.status for j in await store.jobs.jobs_of_run(run_id)} == {Status.COMPLETED}
    events = await store.persistence.outbox_of_run(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event_type == "workflow:completed"


async def test_a_run_that_moved_while_its_stage_ran_is_written_the_reading_way(
    store: SqlStorage,
) -> None:
    """The run's version moves under stage b: its held lock finds another version and the
    transaction, rolled back, runs again reading — the run still completes, nothing twice."""

    async def moves_the_run(ctx: Any) -> None:
        if ctx.stage_id == "b":
            await store.persistence.update_run(ctx.run_id, {})

    _BEFORE_RETURN.append(moves_the_run)
    run_id, per_stage = await _run_handing_on(store, _kernel(store))
    assert [sql.split()[0] for sql in per_stage[1]].count("ROLLBACK") == 1
    run = await store.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED and run.output == {"n": 3}
    assert [j.status for j in await store.jobs.jobs_of_run(run_id)] == [Status.COMPLETED] * 3
    events = await store.persistence.outbox_of_run(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    completed = [e.payload.get("stage_id") for e in events if e.event_type == "stage:completed"]
    assert completed == ["a", "b", "c"]


async def test_a_run_cancelled_while_its_stage_ran_keeps_nothing_of_it(store: SqlStorage) -> None:
    async def cancels(ctx: Any) -> None:
        if ctx.stage_id == "b":
            await store.persistence.update_run(ctx.run_id, {"status": Status.CANCELLED})

    _BEFORE_RETURN.append(cancels)
    outcomes: list[str] = []
    run_id, _ = await _run_handing_on(store, _kernel(store), outcomes=outcomes)
    assert outcomes == ["completed", "failed"]  # b's outcome came too late to count
    run = await store.persistence.get_run(run_id)
    assert run is not None and run.status is Status.CANCELLED
    stages = await store.persistence.stages_of_run(run.id)
    assert [s.stage_id for s in stages] == ["a", "b"]  # no c: the outcome was not written
    assert stages[1].status is Status.RUNNING and stages[1].output_ref is None
    assert await store.blobs.list(f"runs/seq3/{run.id}/b/") == []


@pytest.mark.parametrize("moved", [move for move in MOVES if move in ("run", "stage", "cancelled")])
async def test_a_held_lock_that_no_longer_holds_fails_the_transaction_whole(
    store: SqlStorage, moved: str
) -> None:
    """The run (or its stage) moved since read: the transaction's writes in between ran,
    and are rolled back whole when the held lock is written. (A next row already there, or
    a job gone, fails its own statement at once, as before.)"""
    clock = store.persistence._clock
    assert isinstance(clock, FakeClock)
    ports = Ports(clock, store.persistence, store.jobs, store.blobs, store.ai_calls)
    p = store.persistence
    run, row, leased = await a_running_stage(ports)
    job_id = await move_under(ports, moved, row, leased)
    before = (await p.get_run("r1"), await p.stages_of_run("r1"), await p.outbox_of_run("r1"))
    with pytest.raises(ExpectationFailed):
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
    after = (await p.get_run("r1"), await p.stages_of_run("r1"), await p.outbox_of_run("r1"))
    assert after == before
    assert await store.blobs.list("r1/") == []
    assert {j.id: j.status for j in await store.jobs.jobs_of_run("r1")} == {leased: Status.RUNNING}


async def test_a_call_that_may_read_the_run_finds_its_lock_written(store: SqlStorage) -> None:
    """The lock is held only across calls that touch no run row: a read of the run in the
    same transaction sees it locked, one version on, and its changes folded in."""
    clock = store.persistence._clock
    assert isinstance(clock, FakeClock)
    ports = Ports(clock, store.persistence, store.jobs, store.blobs, store.ai_calls)
    run, row, _ = await a_running_stage(ports)
    async with store.persistence.transaction() as tx:
        locked, _ = await tx.lock_run_and_update_stage(
            "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
        ) or (None, None)
        assert locked is not None
        folded = await tx.update_run("r1", {"total_tokens": 9}, expected_version=locked.version)
        seen = await tx.get_run("r1")
    assert seen is not None and (seen.version, seen.total_tokens) == (run.version + 2, 9)
    assert seen == folded
    assert await store.persistence.get_run("r1") == folded
