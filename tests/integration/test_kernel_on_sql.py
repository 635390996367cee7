"""The kernel on real databases: every example end to end, and the round trips a stage costs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.databases import postgres_database
from tests.kernel.test_examples import examples  # noqa: F401 - the fixture
from wfc.errors import IdempotencyInProgressError
from wfc.runtime import Kernel, RunClaimPending, RunCreate, Workflow
from wfc.runtime.adapters.memory import CollectingEventSink, SequentialIds
from wfc.runtime.adapters.sql import SqlStorage, direct, open_storage
from wfc.runtime.hosts import MaintenanceSettings, process_job
from wfc.runtime.records import Status
from wfc.runtime.registry import WorkflowMap
from wfc.testing import FakeClock, drive
from wfc.testing.conformance import a_run, an_event

INVOICE = {
    "customer": {"name": "Ada", "email": "ada@example.com", "country": "DE"},
    "items": [
        {"description": "Widget", "quantity": 3, "unit_price": {"cents": 1000, "currency": "EUR"}}
    ],
}


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[SqlStorage, FakeClock]]:
    clock = FakeClock()
    if request.param == "sqlite":
        store = open_storage(f"sqlite+aiosqlite:///{tmp_path / '.wfc' / 'wfc.db'}", clock=clock)
        await store.prepare()
        yield store, clock
        await store.close()
        return
    async with postgres_database() as url:
        store = open_storage(url, clock=clock)
        yield store, clock
        await store.close()


def kernel_on(store: SqlStorage, clock: FakeClock, workflows: list[Workflow]) -> Kernel:
    return Kernel(
        persistence=store.persistence,
        blobs=store.blobs,
        jobs=store.jobs,
        events=CollectingEventSink(),
        clock=clock,
        ids=SequentialIds("id"),
        registry=WorkflowMap(workflows),
        pinning=store.pinning,
        shared_transactions=store.shared_transactions,
    )


@pytest.mark.parametrize(
    ("workflow_id", "input"),
    [
        ("document_processor", {"document": "Great product. I love it. Delivery was slow."}),
        ("batch_embeddings", {"texts": ["hello world", "hello there"], "dimensions": 8}),
        ("invoice", INVOICE),
    ],
)
async def test_every_example_runs_on_sql(
    storage: tuple[SqlStorage, FakeClock],
    examples: list[Workflow],  # noqa: F811
    workflow_id: str,
    input: dict[str, Any],
) -> None:
    store, clock = storage
    kernel = kernel_on(store, clock, examples)
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id=workflow_id, input=input)
    )
    run = await drive(kernel, clock, MaintenanceSettings(worker_id="w"), created.workflow_run_id)
    assert run.status is Status.COMPLETED, run.error
    events = await store.persistence.outbox_of_run(run.id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert all(e.published_at is not None for e in events)


async def test_round_trips_per_stage_execution(
    storage: tuple[SqlStorage, FakeClock],
    examples: list[Workflow],  # noqa: F811
) -> None:
    """Dequeue → execute → transition → complete for one stage, in round trips.

    Every transaction runs on the job's pinned connection as explicit
    BEGIN/COMMIT statements and everything else in autocommit, so the
    statements counted are all the round trips there are. The figure is
    reported (README); the bound catches a regression such as a call that
    stops sharing the pin or a read that gains a transaction of its own.
    """
    store, clock = storage
    kernel = kernel_on(store, clock, examples)
    await kernel.dispatch(RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE))
    claimed = await kernel.dispatch(RunClaimPending(worker_id="w"))
    assert claimed.claimed
    with direct.watching(store.engine) as sent:
        (job,) = await store.jobs.dequeue()
        outcome = await process_job(kernel, job)
    statements = [" ".join(s.split()[:2]) if s.startswith("BEGIN") else s.split()[0] for s in sent]
    assert outcome.outcome == "completed"
    print(f"\n{store.engine.dialect.name}: {len(statements)} statements per stage: {statements}")
    begins = [n for n, s in enumerate(statements) if s.startswith("BEGIN")]
    if store.engine.dialect.name == "postgresql":
        # The start's transaction, then the outcome with the run's transition as one
        # predicted statement (the stage is alone in its group; the group it opens, its
        # rows inserted side by side: `combine.Part.adds_only`). 13 before that.
        assert len(begins) == 1 and statements[-2:] == ["COMMIT", "WITH"]
        assert len(statements) <= 8
        return
    # The start, then the outcome with the run's transition.
    assert len(begins) == 2
    # The output, the job's completion and the next job are written in the outcome's
    # transaction: nothing comes before it but the start, nothing after its commit.
    assert statements[begins[1] - 1] == "COMMIT"
    assert statements[-1] == "COMMIT" and statements.count("COMMIT") == 2
    # SQLite 18 (the run's lock written with the outbox counter: `sqlite_run_lock`). The
    # start locks the run before the stage, as a cancel does, so the two cannot
    # deadlock: one statement each.
    assert len(statements) <= 18


async def test_a_crash_while_queueing_the_next_job_loses_nothing(
    storage: tuple[SqlStorage, FakeClock],
    examples: list[Workflow],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The next group's jobs are queued in the transaction that records the stage, so a
    worker that dies in between leaves the stage to run again, not a run with no job.
    (Queued after the commit, the run would sit until `run.reapStuck` noticed it.)"""
    store, clock = storage
    kernel = kernel_on(store, clock, examples)
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE)
    )
    await kernel.dispatch(RunClaimPending(worker_id="w"))
    (job,) = await store.jobs.dequeue()

    async def dies(*_args: Any, **_kwargs: Any) -> list[str]:
        raise ConnectionError("the worker died")

    with monkeypatch.context() as patch:
        patch.setattr(store.jobs, "enqueue", dies)
        with pytest.raises(ConnectionError):
            await process_job(kernel, job)
    run_id = created.workflow_run_id
    (row,) = await store.persistence.stages_of_run(run_id)
    assert (row.stage_id, row.status, row.output_ref) == (job.stage_id, Status.RUNNING, None)
    assert await store.blobs.list(f"runs/invoice/{run_id}/{job.stage_id}/") == []
    (leased,) = await store.jobs.jobs_of_run(run_id)
    assert leased.status is Status.RUNNING  # its lease is reaped and the stage runs again
    run = await drive(kernel, clock, MaintenanceSettings(worker_id="w"), run_id)
    assert run.status is Status.COMPLETED, run.error


async def test_a_created_run_and_its_idempotency_key_commit_together(
    storage: tuple[SqlStorage, FakeClock],
    examples: list[Workflow],  # noqa: F811
) -> None:
    """Nothing follows the create's commit: had the key been completed after it, a crash in
    between would leave the key in progress and refuse the client's retry until it went
    stale, for a run that exists."""
    store, clock = storage
    kernel = kernel_on(store, clock, examples)
    with direct.watching(store.engine) as sent:
        created = await kernel.dispatch(
            RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE)
        )
    # The plan is stored once per process, by a statement of its own before the create.
    assert "INSERT INTO plans" in sent[0]
    sent = sent[1:]
    writes_run = [n for n, sql in enumerate(sent) if "INSERT INTO runs" in sql]
    completes_key = [n for n, sql in enumerate(sent) if "UPDATE idempotency_keys" in sql]
    if store.engine.dialect.name == "postgresql":
        # The key taken as acquired and written with its result, and all the writes held
        # (direct.defer): one statement, a transaction on its own, which fails whole if
        # the key was there (below: the same key again replays).
        assert len(sent) == 1 and writes_run == [0]
        assert "INSERT INTO idempotency_keys" in sent[0] and "SELECT 1 / (" in sent[0]
    else:
        # The key taken as acquired here too, and written with its result inside the
        # create's transaction: no statement (and no commit) of its own before it.
        assert sent[0].startswith("BEGIN") and sent[-1] == "COMMIT"
        inserts_key = [n for n, sql in enumerate(sent) if "INSERT INTO idempotency_keys" in sql]
        assert len(inserts_key) == 1 and not completes_key
        assert all(0 < n < len(sent) - 1 for n in [*writes_run, *inserts_key])
    again = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE)
    )
    assert again.workflow_run_id == created.workflow_run_id


async def test_a_created_runs_events_are_numbered_from_one_and_the_next_follow(
    storage: tuple[SqlStorage, FakeClock],
    examples: list[Workflow],  # noqa: F811
) -> None:
    """The create writes the run with its first event, numbered by hand (no counter to
    advance): later appends go on from there, with no gap and no collision."""
    store, clock = storage
    kernel = kernel_on(store, clock, examples)
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE)
    )
    await kernel.dispatch(RunClaimPending(worker_id="w"))
    events = await store.persistence.outbox_of_run(created.workflow_run_id)
    assert events[0].event_type == "workflow:created" and len(events) > 1
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))


async def test_a_run_created_in_a_transaction_is_there_for_its_next_call(
    storage: tuple[SqlStorage, FakeClock],
) -> None:
    """A run waits to be written with its first events only until the transaction calls
    anything else (here a read of it), or ends without appending any."""
    store, clock = storage
    async with store.persistence.transaction() as tx:
        await tx.create_run(a_run(clock, "r1"))
        found = await tx.get_run("r1")
        await tx.append_outbox([an_event(clock, "e1", "r1")])
        await tx.create_run(a_run(clock, "r2"))
    assert found is not None and found.id == "r1"
    assert await store.persistence.get_run("r2") is not None
    (event,) = await store.persistence.outbox_of_run("r1")
    assert event.sequence == 1


async def test_a_create_whose_key_another_holds_is_refused_and_writes_nothing(
    storage: tuple[SqlStorage, FakeClock],
    examples: list[Workflow],  # noqa: F811
) -> None:
    """The key is taken as acquired and written in the create's transaction (on
    PostgreSQL its one statement): a key already there, still in progress, fails that
    transaction whole (no run, no event), and the create then reads the key and is
    refused as the spec says."""
    store, clock = storage
    kernel = kernel_on(store, clock, examples)
    await store.persistence.acquire_idempotency_key("k", "run.create", clock.now(), None)
    with pytest.raises(IdempotencyInProgressError):
        await kernel.dispatch(RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE))
    assert await store.persistence.list_runs() == []
    await store.persistence.release_idempotency_key("k", "run.create")
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE)
    )
    assert [r.id for r in await store.persistence.list_runs()] == [created.workflow_run_id]


@pytest.mark.parametrize("storage", ["postgres"], indirect=True)
async def test_a_stage_start_takes_the_run_before_the_stage_as_a_cancel_does(
    storage: tuple[SqlStorage, FakeClock],
    examples: list[Workflow],  # noqa: F811
) -> None:
    """Row locks are taken run first, then stage, by every writer: a cancel (or a cancel
    cascading from a parent run) holds the run and then writes its stages. A stage start
    that took its stage row first and the run last (for its event's sequence) deadlocked
    with it on PostgreSQL. Here another transaction plays the cancel: it holds the run's
    row while the start begins, then writes the run's stages. In that order it must get
    them at once, and the start must go on once it commits."""
    store, clock = storage
    kernel = kernel_on(store, clock, examples)
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="invoice", input=INVOICE)
    )
    run_id = created.workflow_run_id
    assert (await kernel.dispatch(RunClaimPending(worker_id="w"))).claimed
    async with store.engine.connect() as cancel:
        await cancel.execute(text("BEGIN"))
        await cancel.execute(text("SET LOCAL lock_timeout = '5s'"))
        await cancel.execute(
            text("UPDATE runs SET version = version WHERE id = :id"), {"id": run_id}
        )
        (job,) = await store.jobs.dequeue()
        start = asyncio.create_task(process_job(kernel, job))
        await asyncio.sleep(0.5)  # the start is waiting now: for the run, not holding a stage
        await cancel.execute(
            text("UPDATE stages SET version = version WHERE run_id = :id"), {"id": run_id}
        )
        await cancel.execute(text("COMMIT"))
    outcome = await asyncio.wait_for(start, timeout=30)
    assert outcome.outcome == "completed"
