"""SQLite: a stage alone in its group writes its run once — the lock, the run's own updates
and the outbox counter in one statement (`sqlite_run_lock`) — and a run that moved while
the stage ran fails that statement, after which the kernel does the transaction reading."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.handed_seq3 import (
    BEFORE_RETURN,
    run_handing_on,
    seq3_kernel,
    store_ports,
)
from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import SqlStorage, open_storage
from wfc.runtime.records import Status
from wfc.testing import FakeClock
from wfc.testing.conformance import MOVES, a_running_stage, a_stage, an_event, move_under


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=FakeClock())
    await storage.prepare()
    yield storage
    await storage.close()
    BEFORE_RETURN.clear()


def _run_writes(sent: list[str]) -> list[str]:
    return [sql for sql in sent if sql.startswith("UPDATE runs")]


async def test_each_handed_stage_writes_its_run_once(store: SqlStorage) -> None:
    run_id, per_stage = await run_handing_on(store, seq3_kernel(store))
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

    BEFORE_RETURN.append(moves_the_run)
    run_id, per_stage = await run_handing_on(store, seq3_kernel(store))
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

    BEFORE_RETURN.append(cancels)
    outcomes: list[str] = []
    run_id, _ = await run_handing_on(store, seq3_kernel(store), outcomes=outcomes)
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
    ports = store_ports(store)
    clock = ports.clock
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
    run, row, _ = await a_running_stage(store_ports(store))
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
