"""PostgreSQL: a stage alone in its group commits its outcome and the run's transition as one
statement, predicted from what the stage started with — and a prediction that no longer
holds fails that statement whole, after which the kernel does the transaction reading."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from tests.databases import postgres_store
from tests.integration.handed_seq3 import (
    BEFORE_RETURN,
    run_handing_on,
    seq3_kernel,
    store_ports,
)
from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import SqlStorage, direct
from wfc.runtime.records import Status
from wfc.testing import FakeClock
from wfc.testing.conformance import (
    MOVES,
    a_run,
    a_running_stage,
    a_stage,
    an_event,
    move_under,
)


@pytest.fixture
async def store() -> AsyncIterator[SqlStorage]:
    async with postgres_store(BEFORE_RETURN) as storage:
        yield storage


def _words(sql: str) -> str:
    return " ".join(sql.replace("(", "( ").split())


async def test_each_handed_stage_costs_one_statement(store: SqlStorage) -> None:
    kernel = seq3_kernel(store)
    run_id, per_stage = await run_handing_on(store, kernel)
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
    kernel = seq3_kernel(store)

    async def moves_the_run(ctx: Any) -> None:
        if ctx.stage_id == "b":
            await store.persistence.update_run(ctx.run_id, {})

    BEFORE_RETURN.append(moves_the_run)
    run_id, per_stage = await run_handing_on(store, kernel)
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
    kernel = seq3_kernel(store)

    async def cancels(ctx: Any) -> None:
        if ctx.stage_id == "b":
            await store.persistence.update_run(ctx.run_id, {"status": Status.CANCELLED})

    BEFORE_RETURN.append(cancels)
    outcomes: list[str] = []
    run_id, per_stage = await run_handing_on(store, kernel, outcomes=outcomes)
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
    ports = store_ports(store)
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
    ports = store_ports(store)
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
            monkeypatch.setattr(direct, "on_asyncpg", gone)
    assert not isinstance(raised.value, ExpectationFailed)
    assert isinstance(raised.value.orig, ConnectionGone)
