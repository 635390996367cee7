"""WorkerHost on memory, SQLite and PostgreSQL: runs finish without waiting on polls, long
stages keep their lease, and stopping leaves no job RUNNING."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.databases import open_storage, postgres_database
from tests.hosts.conftest import Backend
from tests.kernel.conftest import Count, Script, build_workflows
from wfc.runtime import RunCreate, Status, WorkerHost, run_and_wait
from wfc.runtime.adapters.sql import PoolOptions
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.registry import WorkflowMap

DOC = {"text": "the quick brown fox"}
SLOW = timedelta(seconds=60)  # poll intervals long enough that a test finishing proves wakeups


@asynccontextmanager
async def _database(kind: str, directory: Path) -> AsyncIterator[str]:
    """A migrated database's URL: a SQLite file, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'wfc.db'}"
        store = open_storage(url)
        await store.create_schema()
        await store.close()
        yield url
        return
    async with postgres_database() as url:
        yield url


def host(backend: Backend, **settings: Any) -> WorkerHost:
    options: dict[str, Any] = {
        "orchestration_interval": SLOW,
        "job_poll_interval": SLOW,
        "shutdown_grace": timedelta(seconds=5),
        "wakeups": backend.wakeups,
    }
    options.update(settings)
    return WorkerHost(backend.kernel(), **options)


async def test_run_and_wait_finishes_each_shape_without_waiting_for_a_poll(
    backend: Backend,
) -> None:
    worker = host(backend, concurrency=2)
    await worker.start()
    try:
        for workflow_id, summary in [
            ("linear", "4: the quick brown fox"),
            ("fanout", "THE QUICK BROWN FOX (16)"),
        ]:
            run = await run_and_wait(
                worker.kernel,
                workflow_id,
                DOC,
                host=worker,
                timeout=timedelta(seconds=20),
            )
            assert run.status is Status.COMPLETED, run.error
            assert run.output == {"summary": summary}
            assert all(s.status is Status.COMPLETED and s.attempts == 1 for s in run.stages)
    finally:
        await worker.stop()
    stats = worker.stats()
    assert stats.jobs_processed == 7 and stats.jobs_succeeded == 7 and stats.jobs_failed == 0
    assert stats.running is False and stats.uptime_s == 0.0


async def test_run_and_wait_without_a_host_starts_and_stops_its_own(backend: Backend) -> None:
    run = await run_and_wait(backend.kernel(), "linear", DOC, timeout=timedelta(seconds=20))
    assert run.status is Status.COMPLETED
    assert [s.stage_id for s in run.stages] == ["split", "count", "report"]
    assert run.duration_ms is not None
    jobs = await backend.storage.jobs.jobs_of_run(run.run_id)
    assert {j.status for j in jobs} == {Status.COMPLETED}


async def test_a_failing_run_is_returned_with_the_stage_and_error(
    backend: Backend, script: Script
) -> None:
    from wfc.errors import NonRetryableError

    script.then("count", NonRetryableError("no counting today"))
    run = await run_and_wait(backend.kernel(), "linear", DOC, timeout=timedelta(seconds=20))
    assert run.status is Status.FAILED
    assert run.error is not None and run.error.get("stage_id") == "count"
    assert "no counting today" in str(run.error)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # the others poll
async def test_a_run_created_elsewhere_is_claimed_without_waiting_for_the_tick(
    backend: Backend,
) -> None:
    """The worker already ran its first tick; only a wakeup can start the new run soon
    (only PostgreSQL carries wakeups between processes)."""
    worker = host(backend)
    await worker.start()
    try:
        await asyncio.sleep(0.3)  # the first tick has run; the next is a minute away
        other_process = backend.kernel()
        created = await other_process.dispatch(
            RunCreate(idempotency_key="elsewhere", workflow_id="linear", input=DOC)
        )
        run = await wait_for_run(
            other_process, created.workflow_run_id, timeout=timedelta(seconds=20)
        )
        assert run.status is Status.COMPLETED
    finally:
        await worker.stop()


async def test_a_long_stage_renews_its_lease_and_is_not_reaped(
    backend: Backend, script: Script
) -> None:
    calls = 0

    def slow(ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        time.sleep(1.5)
        return Count(count=len(ctx.input.words))

    script.then("count", slow)
    worker = host(
        backend,
        concurrency=2,  # a free slot would take the job at once if its lease were reaped
        orchestration_interval=timedelta(milliseconds=100),
        stale_lease_threshold=timedelta(milliseconds=700),
        heartbeat_interval=timedelta(milliseconds=100),
    )
    await worker.start()
    try:
        run = await run_and_wait(
            worker.kernel, "linear", DOC, host=worker, timeout=timedelta(seconds=20)
        )
    finally:
        await worker.stop()
    assert run.status is Status.COMPLETED
    assert calls == 1
    assert next(s for s in run.stages if s.stage_id == "count").attempts == 1


async def stopped_during_count(
    backend: Backend, script: Script, *, stage_seconds: float, grace: timedelta
) -> tuple[str, list[Any]]:
    """Start a `linear` run whose `count` stage takes `stage_seconds`, stop the worker while
    it runs with `grace`, and return the run id and its jobs as the stop left them."""
    started = threading.Event()

    def slow_count(ctx: Any) -> Any:
        started.set()
        time.sleep(stage_seconds)
        return Count(count=0)

    script.then("count", slow_count)
    worker = host(backend)
    await worker.start()
    created = await worker.kernel.dispatch(
        RunCreate(idempotency_key="stopping", workflow_id="linear", input=DOC)
    )
    worker.wake_claims()
    while not started.is_set():
        await asyncio.sleep(0.02)
    await worker.stop(grace=grace)
    jobs = await backend.storage.jobs.jobs_of_run(created.workflow_run_id)
    assert Status.RUNNING not in {j.status for j in jobs}
    return created.workflow_run_id, jobs


async def test_stop_releases_a_job_whose_stage_outlives_the_grace_period(
    backend: Backend, script: Script
) -> None:
    run_id, jobs = await stopped_during_count(
        backend, script, stage_seconds=1.0, grace=timedelta(milliseconds=200)
    )
    released = next(j for j in jobs if j.stage_id == "count")
    assert released.status is Status.PENDING and released.worker_id is None

    successor = host(backend)
    await successor.start()
    try:
        successor.wake_jobs()
        run = await wait_for_run(successor.kernel, run_id, timeout=timedelta(seconds=20))
    finally:
        await successor.stop()
    assert run.status is Status.COMPLETED
    assert script.calls["count"] == 2


async def test_stop_waits_for_an_in_flight_job_within_the_grace_period(
    backend: Backend, script: Script
) -> None:
    _run_id, jobs = await stopped_during_count(
        backend, script, stage_seconds=0.3, grace=timedelta(seconds=10)
    )
    assert next(j for j in jobs if j.stage_id == "count").status is Status.COMPLETED


async def test_a_worker_claims_only_the_runs_it_has_slots_for(
    backend: Backend, script: Script
) -> None:
    """With 2 slots and 5 runs waiting, 2 runs start and 3 stay PENDING for any worker —
    no job is queued that this worker cannot start — and each slot that frees up claims
    the next run, without waiting for a poll."""
    gate = threading.Event()
    splitting = threading.Semaphore(0)

    def held_split(ctx: Any) -> Any:
        splitting.release()
        gate.wait(timeout=20)
        return {"words": ["held"]}

    script.then("split", *[held_split] * 5)
    worker = host(backend, concurrency=2)
    ids = [
        (
            await worker.kernel.dispatch(
                RunCreate(idempotency_key=f"slots-{n}", workflow_id="linear", input=DOC)
            )
        ).workflow_run_id
        for n in range(5)
    ]
    await worker.start()
    try:
        for _ in range(2):
            while not splitting.acquire(blocking=False):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time for a third claim, were it to happen
        runs = [await backend.storage.persistence.get_run(run_id) for run_id in ids]
        assert sorted(r.status.value for r in runs if r) == ["PENDING"] * 3 + ["RUNNING"] * 2
        jobs = [j for run_id in ids for j in await backend.storage.jobs.jobs_of_run(run_id)]
        assert [j.status for j in jobs] == [Status.RUNNING, Status.RUNNING]
        gate.set()
        finished = [
            await wait_for_run(worker.kernel, run_id, timeout=timedelta(seconds=20))
            for run_id in ids
        ]
    finally:
        gate.set()
        await worker.stop()
    assert {r.status for r in finished} == {Status.COMPLETED}
    assert script.calls["split"] == 5


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_pool_sized_for_the_slots_opens_no_connection_per_job(
    script: Script, database: str, tmp_path: Path
) -> None:
    """A worker's slots hold a connection each; a pool that keeps fewer than that closes
    the extra ones as they come back, and a busy worker then opened one every few runs (a
    server process each on PostgreSQL, a thread and its PRAGMAs on SQLite)."""
    registry = WorkflowMap(build_workflows(script))
    slots = 8  # more than SQLAlchemy's default pool keeps (5)
    async with _database(database, tmp_path) as url:
        storage = open_storage(url, pool=PoolOptions.for_slots(slots))
        connects = 0

        def connected(*_args: Any) -> None:
            nonlocal connects
            connects += 1

        event.listen(storage.engine.sync_engine, "connect", connected)
        worker = WorkerHost(
            make_kernel(storage, registry),
            concurrency=slots,
            orchestration_interval=SLOW,
            job_poll_interval=SLOW,
            wakeups=storage.wakeups,
        )
        await worker.start()
        try:
            ids = [
                (
                    await worker.kernel.dispatch(
                        RunCreate(idempotency_key=f"pool-{n}", workflow_id="fanout", input=DOC)
                    )
                ).workflow_run_id
                for n in range(24)
            ]
            worker.wake_claims()
            runs = [
                await wait_for_run(worker.kernel, run_id, timeout=timedelta(seconds=30))
                for run_id in ids
            ]
        finally:
            await worker.stop()
            await storage.close()
    assert {r.status for r in runs} == {Status.COMPLETED}
    assert connects <= PoolOptions.for_slots(slots).size


async def test_a_slot_runs_the_job_it_hands_itself_on_the_connection_it_holds(
    script: Script,
) -> None:
    """A slot that finishes a stage runs the next stage's job itself, on its pinned
    connection, which a pool kept per slot lets it hold while the stage body runs, and the
    orchestrator claims on a pin of its own: a three-stage run checks a connection out once,
    not twice per stage and once for its claim."""
    registry = WorkflowMap(build_workflows(script))
    async with postgres_database() as url:
        storage = open_storage(url, pool=PoolOptions.for_slots(2))
        creator = open_storage(url)
        checkouts = 0

        def checked_out(*_args: Any) -> None:
            nonlocal checkouts
            checkouts += 1

        worker = WorkerHost(
            make_kernel(storage, registry),
            concurrency=2,
            orchestration_interval=SLOW,
            job_poll_interval=SLOW,
            wakeups=storage.wakeups,
        )
        await worker.start()
        try:
            await asyncio.sleep(0.2)  # the orchestrator's first tick and the listener's checkout
            event.listen(storage.engine.sync_engine.pool, "checkout", checked_out)
            runs = []
            outside = make_kernel(creator, registry)  # creates and waits on its own pool
            for n in range(10):
                created = await outside.dispatch(
                    RunCreate(idempotency_key=f"slot-{n}", workflow_id="linear", input=DOC)
                )
                runs.append(
                    await wait_for_run(
                        outside, created.workflow_run_id, timeout=timedelta(seconds=20)
                    )
                )
            event.remove(storage.engine.sync_engine.pool, "checkout", checked_out)
        finally:
            await worker.stop()
            await storage.close()
            await creator.close()
    assert {r.status for r in runs} == {Status.COMPLETED}
    # The first job's slot only: the claim runs on the orchestrator's pin (2 per run
    # without it, 4 before slots kept their connections).
    assert checkouts / len(runs) <= 1.5
