"""One connection per pinned task: what it shares, what it keeps apart, and what it costs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.databases import postgres_database
from wfc.runtime.adapters.sql import PoolOptions, SqlStorage, open_storage
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.job_records import JobSpec
from wfc.runtime.records import LogRecord
from wfc.testing import FakeClock, SlotTaker
from wfc.testing.conformance import a_run

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStorage]:
    if request.param == "sqlite":
        store = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}")
        await store.create_schema()
        await store.persistence.create_run(a_run(FakeClock(), "r"))
        yield store
        await store.close()
        return
    async with postgres_database() as url:
        store = open_storage(url)
        await store.persistence.create_run(a_run(FakeClock(), "r"))
        yield store
        await store.close()


class Checkouts:
    """Counts connections taken from the storage's pool."""

    def __init__(self, store: SqlStorage) -> None:
        self.count = 0
        self._pool = store.engine.sync_engine.pool
        event.listen(self._pool, "checkout", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._pool, "checkout", self._seen)


def spec(stage_id: str) -> JobSpec:
    return JobSpec(run_id="r", workflow_id="w", stage_id=stage_id, priority=0, max_attempts=3)


def log(message: str) -> LogRecord:
    return LogRecord(
        id=message,
        run_id="r",
        stage_record_id=None,
        level="INFO",
        message=message,
        fields={},
        created_at=NOW,
    )


async def test_calls_on_every_port_share_the_pinned_connection(storage: SqlStorage) -> None:
    checkouts = Checkouts(storage)
    async with storage.pinning.pinned():
        await storage.jobs.enqueue([spec("a")])
        (job,) = await storage.jobs.dequeue()
        await storage.blobs.put("k", b"v")
        assert await storage.blobs.get("k") == b"v"
        async with storage.persistence.transaction() as tx:
            await tx.add_log(log("inside"))
        await storage.jobs.complete(job.id)
    checkouts.close()
    assert checkouts.count == 1
    assert [entry.message for entry in await storage.persistence.logs_of_run("r")] == ["inside"]


async def test_a_failing_transaction_in_a_pin_rolls_back_and_the_pin_goes_on(
    storage: SqlStorage,
) -> None:
    async with storage.pinning.pinned():
        with pytest.raises(RuntimeError):
            async with storage.persistence.transaction() as tx:
                await tx.add_log(log("rolled back"))
                raise RuntimeError("boom")
        async with storage.persistence.transaction() as tx:
            await tx.add_log(log("kept"))
            async with tx.transaction() as inner:  # joins the outer transaction
                await inner.add_log(log("kept too"))
    messages = [entry.message for entry in await storage.persistence.logs_of_run("r")]
    assert messages == ["kept", "kept too"]


async def test_a_pin_whose_rollback_failed_takes_another_connection(storage: SqlStorage) -> None:
    """A pinned connection whose rollback failed (`broken`: it may still be inside a
    transaction) serves no further call: the pin's next call, a statement or a
    transaction, takes another connection, and the broken one is not used again."""
    for in_transaction in (False, True):
        async with storage.pinning.pinned():
            await storage.persistence.get_run("r")
            pin = storage.pinning._pin()
            assert pin is not None
            first = pin.conn
            pin.broken = True
            if in_transaction:
                async with storage.persistence.transaction() as tx:
                    await tx.get_run("r")
            else:
                await storage.persistence.get_run("r")
            assert pin.conn is not None and pin.conn is not first
            assert not pin.broken


async def test_other_tasks_never_use_the_pinned_connection(storage: SqlStorage) -> None:
    """A stage body's own tasks (or a heartbeat) run queries concurrently with the pinning
    task; sharing its connection would fail ("another operation is in progress")."""
    checkouts = Checkouts(storage)
    async with storage.pinning.pinned():
        await storage.persistence.add_log(log("pinned"))

        async def elsewhere(n: int) -> bytes:
            await storage.blobs.put(f"b{n}", b"x")
            return await storage.blobs.get(f"b{n}")

        results = await asyncio.gather(*(elsewhere(n) for n in range(4)), elsewhere(4))
        await storage.persistence.add_log(log("pinned again"))
    checkouts.close()
    assert results == [b"x"] * 5
    assert checkouts.count == 1 + 5 * 2
    assert await storage.blobs.list("b") == ["b0", "b1", "b2", "b3", "b4"]


async def test_released_gives_the_connection_back_and_the_pin_takes_one_again(
    storage: SqlStorage,
) -> None:
    pool = storage.engine.sync_engine.pool
    async with storage.pinning.pinned():
        await storage.blobs.put("k", b"v")
        async with storage.pinning.released():
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
            await storage.blobs.get("k")  # checked out and back for this call alone
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
        await storage.blobs.get("k")
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
    # Kept out of the pool for the next pin (`parked`).
    assert pool.checkedout() == 1  # type: ignore[attr-defined]


async def test_a_pool_kept_per_pin_lets_the_pin_hold_its_connection_while_released(
    tmp_path: Path,
) -> None:
    """With a connection kept for every slot (`PoolOptions.for_slots`), giving the pinned
    connection back for a stage body and taking one after would cost two checkouts per job
    for nothing: the pin holds it, and calls inside the block use it."""
    store = open_storage(
        f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", pool=PoolOptions.for_slots(2)
    )
    await store.create_schema()
    checkouts = Checkouts(store)
    async with store.pinning.pinned():
        await store.blobs.put("k", b"v")
        async with store.pinning.released():
            assert await store.blobs.get("k") == b"v"
        await store.blobs.get("k")
    checkouts.close()
    await store.close()
    assert checkouts.count == 1


async def test_a_pin_goes_on_after_the_server_closed_its_connection() -> None:
    """A worker slot keeps its pin from job to job: when PostgreSQL ends the pinned
    connection's backend (a restart, an administrator), the call that meets it fails, and
    the pin's next call runs on a new connection instead of failing for good."""
    async with postgres_database() as url:
        store = open_storage(url)
        await store.persistence.create_run(a_run(FakeClock(), "r"))
        admin = create_async_engine(url, poolclass=NullPool)
        async with store.pinning.pinned():
            assert await store.persistence.get_run("r") is not None
            async with admin.connect() as conn:
                await conn.execute(TERMINATE_THE_OTHERS)
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                await store.persistence.get_run("r")
            assert await store.persistence.get_run("r") is not None
        await admin.dispose()
        await store.close()


TERMINATE_THE_OTHERS = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def test_a_transaction_takes_every_port_with_it_even_without_a_pin(
    storage: SqlStorage,
) -> None:
    """The job queue and the blob store join a transaction their task opened, so a command
    queues its jobs and stores its blobs in the commit that records its state."""
    with pytest.raises(RuntimeError):
        async with storage.persistence.transaction() as tx:
            await tx.add_log(log("rolled back"))
            await storage.jobs.enqueue([spec("lost")])
            await storage.blobs.put("lost", b"v")
            raise RuntimeError("boom")
    async with storage.persistence.transaction() as tx:
        await tx.add_log(log("kept"))
        await storage.jobs.enqueue([spec("kept")])
        await storage.blobs.put("kept", b"v")
    assert [entry.message for entry in await storage.persistence.logs_of_run("r")] == ["kept"]
    assert [job.stage_id for job in await storage.jobs.jobs_of_run("r")] == ["kept"]
    assert await storage.blobs.list("") == ["kept"]


async def test_jobs_queued_in_a_transaction_reach_the_taker_only_once_it_commits(
    storage: SqlStorage,
) -> None:
    """A handed job must not start before the state it belongs to is visible."""
    taker = SlotTaker(2)
    with handing_off_to(taker):
        with pytest.raises(RuntimeError):
            async with storage.persistence.transaction():
                await storage.jobs.enqueue([spec("rolled back")])
                raise RuntimeError("boom")
        assert taker.taken == []
        async with storage.persistence.transaction():
            await storage.jobs.enqueue([spec("a")])
            assert taker.taken == []
        assert [job.stage_id for job in taker.taken] == ["a"]
        await storage.jobs.enqueue([spec("b")])  # outside a transaction: at once
        assert [job.stage_id for job in taker.taken] == ["a", "b"]
    assert [job.stage_id for job in await storage.jobs.jobs_of_run("r")] == ["a", "b"]
