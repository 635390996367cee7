"""Schedules fire a run per tick, once however many kernels race for it (memory, SQLite,
PostgreSQL, on a fake clock): catch-up after an outage, overlap, pause, DST, plan sync."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import postgres_database
from wfc.plan import CatchUp, Overlap, ScheduleSpec
from wfc.runtime import RunClaimPending, Workflow, WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory import MemoryAICallLogger, MemoryBlobStore
from wfc.runtime.adapters.memory.jobs import MemoryJobTransport
from wfc.runtime.adapters.memory.persistence import MemoryPersistence
from wfc.runtime.adapters.memory.schedules import MemoryScheduleStore
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.cron import next_after
from wfc.runtime.hosts.steps import announce_worker
from wfc.runtime.kernel.schedules import fire_due_schedules, sync_declared, tick_key
from wfc.runtime.records import RunRecord, Status
from wfc.runtime.schedule_store import ScheduleRecord, ScheduleStore
from wfc.testing import FakeClock, SequentialIds, TestKernel, make_test_kernel
from wfc.testing.harness import MemoryStorage

START = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday, midnight


class Report(BaseModel):
    region: str


class Done(BaseModel):
    region: str


def reports(*schedules: ScheduleSpec, description: str = "") -> Workflow:
    """A one-stage workflow declaring `schedules`."""

    def step(ctx: Any) -> Done:
        return Done(region=ctx.input.region)

    built = (
        WorkflowBuilder("reports", "Reports", input=Report)
        .pipe(define_stage(id="make", input=Report, output=Done, execute=step))
        .build()
    )
    update = {"schedules": schedules, "description": description}
    plan = built.plan.model_copy(update=update).with_fingerprint()
    return Workflow(plan, built.implementations, input_model=built.input_model)


def hourly(**fields: Any) -> ScheduleSpec:
    return ScheduleSpec(name="hourly", cron="0 * * * *", input={"region": "eu"}, **fields)


@dataclass
class Fleet:
    """Kernels over one database and one schedule store, on one fake clock."""

    storage: Any
    store: ScheduleStore
    clock: FakeClock

    def kernel(self, workflow: Workflow, name: str = "w1") -> TestKernel:
        return make_test_kernel(workflow, clock=self.clock, storage=self.storage, ids_prefix=name)

    async def runs(self, tk: TestKernel) -> list[RunRecord]:
        return await tk.all_runs()

    async def row(self, name: str = "hourly") -> ScheduleRecord:
        row = await self.store.get("reports", name)
        assert row is not None
        return row


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fleet]:
    clock = FakeClock(START)
    if request.param == "memory":
        storage: Any = MemoryStorage(
            persistence=MemoryPersistence(clock),
            jobs=MemoryJobTransport(clock, worker_id="w", ids=SequentialIds("job")),
            blobs=MemoryBlobStore(),
            ai_calls=MemoryAICallLogger(),
        )
        yield Fleet(storage, MemoryScheduleStore(), clock)
        return
    if request.param == "sqlite":
        storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=clock)
        await storage.create_schema()
        yield Fleet(storage, storage.schedules, clock)
        await storage.close()
        return
    async with postgres_database() as url:
        storage = open_storage(url, clock=clock)
        yield Fleet(storage, storage.schedules, clock)
        await storage.close()


async def _fire(tk: TestKernel, fleet: Fleet) -> int:
    return (await fire_due_schedules(tk.kernel, fleet.store)).started


def _ticks(runs: list[RunRecord]) -> list[str]:
    return sorted((run.metadata or {})["tick"] for run in runs)


async def test_a_schedule_fires_at_its_time_and_not_before(fleet: Fleet) -> None:
    tk = fleet.kernel(reports(hourly()))
    await sync_declared(tk.kernel, fleet.store)
    row = await fleet.row()
    assert row.source == "plan" and row.next_due_at == START + timedelta(hours=1)
    fleet.clock.advance(minutes=59, seconds=59)
    result = await fire_due_schedules(tk.kernel, fleet.store)
    assert result.started == 0 and result.next_due_at == START + timedelta(hours=1)
    fleet.clock.advance(seconds=1)
    assert await _fire(tk, fleet) == 1
    assert await _fire(tk, fleet) == 0  # the tick is done
    [run] = await fleet.runs(tk)
    assert run.input == {"region": "eu"} and run.status is Status.PENDING
    assert run.metadata == {"schedule": "hourly", "tick": "2026-01-01T01:00:00+00:00"}
    row = await fleet.row()
    assert row.last_tick_at == START + timedelta(hours=1) and row.last_run_id == run.id
    assert row.last_outcome == "started" and row.next_due_at == START + timedelta(hours=2)


async def test_three_kernels_racing_over_a_day_fire_each_tick_once(fleet: Fleet) -> None:
    workflow = reports(hourly(overlap=Overlap.ALLOW))
    kernels = [fleet.kernel(workflow, f"w{i}") for i in range(3)]
    await asyncio.gather(*(sync_declared(tk.kernel, fleet.store) for tk in kernels))
    started = 0
    for _ in range(24 * 3):  # every 20 minutes for a day, all three at once
        fleet.clock.advance(minutes=20)
        results = await asyncio.gather(*(_fire(tk, fleet) for tk in kernels))
        started += sum(results)
    runs = await fleet.runs(kernels[0])
    assert started == 24 and len(runs) == 24
    expected = [(START + timedelta(hours=h)).isoformat() for h in range(1, 25)]
    assert _ticks(runs) == expected  # each tick once, none missed


@pytest.mark.parametrize(
    ("catch_up", "ticks"),
    [
        (CatchUp.SKIP, []),
        (CatchUp.LATEST, [5]),
        (CatchUp.ALL, [1, 2, 3, 4, 5]),
    ],
)
async def test_after_an_outage_each_catch_up_policy(
    fleet: Fleet, catch_up: CatchUp, ticks: list[int]
) -> None:
    tk = fleet.kernel(reports(hourly(catch_up=catch_up, overlap=Overlap.ALLOW)))
    await sync_declared(tk.kernel, fleet.store)
    fleet.clock.advance(hours=5, minutes=30)  # down from 00:00 to 05:30
    await _fire(tk, fleet)
    assert _ticks(await fleet.runs(tk)) == [(START + timedelta(hours=h)).isoformat() for h in ticks]
    assert (await fleet.row()).next_due_at == START + timedelta(hours=6)


async def test_catch_up_all_is_bounded_per_pass_and_goes_on_next_pass(fleet: Fleet) -> None:
    tk = fleet.kernel(reports(hourly(catch_up=CatchUp.ALL, overlap=Overlap.ALLOW)))
    await sync_declared(tk.kernel, fleet.store)
    fleet.clock.advance(hours=5, minutes=30)
    first = await fire_due_schedules(tk.kernel, fleet.store, max_ticks=2)
    assert first.started == 2 and first.more
    assert (await fleet.row()).next_due_at == START + timedelta(hours=3)
    passes = 0
    while (await fire_due_schedules(tk.kernel, fleet.store, max_ticks=2)).more:
        passes += 1
    assert passes == 1 and len(await fleet.runs(tk)) == 5


async def test_catch_up_skip_still_fires_a_tick_found_on_time(fleet: Fleet) -> None:
    tk = fleet.kernel(reports(hourly(catch_up=CatchUp.SKIP)))
    await sync_declared(tk.kernel, fleet.store)
    fleet.clock.advance(hours=1, seconds=10)
    assert await _fire(tk, fleet) == 1


async def test_overlap_skip_waits_for_the_last_run_and_allow_does_not(fleet: Fleet) -> None:
    skip = ScheduleSpec(name="skip", cron="0 * * * *", input={"region": "a"})
    allow = ScheduleSpec(
        name="allow", cron="0 * * * *", input={"region": "b"}, overlap=Overlap.ALLOW
    )
    tk = fleet.kernel(reports(skip, allow))
    await sync_declared(tk.kernel, fleet.store)
    fleet.clock.advance(hours=1)
    assert await _fire(tk, fleet) == 2
    first = (await fleet.row("skip")).last_run_id
    assert first is not None
    fleet.clock.advance(hours=1)  # both first runs still PENDING
    assert await _fire(tk, fleet) == 1
    skipped = await fleet.row("skip")
    assert skipped.last_tick_at == START + timedelta(hours=2)
    assert skipped.last_outcome == f"skipped: run {first} is PENDING"
    assert skipped.last_run_id == first
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1", max_claims=10))
    assert (await tk.drive(first)).status is Status.COMPLETED
    fleet.clock.set(START + timedelta(hours=3))
    assert await _fire(tk, fleet) == 2  # the last run ended: `skip` fires again
    assert [r.input["region"] for r in await fleet.runs(tk)].count("b") == 3


async def test_a_paused_schedule_fires_nothing_and_resumes_from_now(fleet: Fleet) -> None:
    tk = fleet.kernel(reports(hourly()))
    await sync_declared(tk.kernel, fleet.store)
    row = await fleet.row()
    await fleet.store.set_paused(row.id, True, fleet.clock.now())
    fleet.clock.advance(hours=3, minutes=10)
    result = await fire_due_schedules(tk.kernel, fleet.store)
    assert result.started == 0 and result.next_due_at is None
    await sync_declared(tk.kernel, fleet.store)  # a worker's restart keeps the pause
    assert (await fleet.row()).paused
    resume_at = START + timedelta(hours=4)
    await fleet.store.set_paused(row.id, False, fleet.clock.now(), resume_at)
    assert await _fire(tk, fleet) == 0  # the ticks missed while paused are not caught up
    fleet.clock.set(resume_at)
    assert await _fire(tk, fleet) == 1


async def test_a_dst_day_in_paris_fires_each_daily_tick_once(fleet: Fleet) -> None:
    spring = datetime(2026, 3, 28, 12, tzinfo=UTC)  # clocks go 02:00 → 03:00 on the 29th
    fleet.clock.set(spring)
    daily = ScheduleSpec(
        name="daily",
        cron="30 2 * * *",
        timezone="Europe/Paris",
        input={"region": "fr"},
        overlap=Overlap.ALLOW,
    )
    tk = fleet.kernel(reports(daily))
    await sync_declared(tk.kernel, fleet.store)
    for _ in range(3 * 24 * 4):  # three days, every 15 minutes
        fleet.clock.advance(minutes=15)
        await _fire(tk, fleet)
    assert _ticks(await fleet.runs(tk)) == [
        "2026-03-29T01:00:00+00:00",  # 02:30 does not exist that night: 03:00 CEST
        "2026-03-30T00:30:00+00:00",  # 02:30 CEST
        "2026-03-31T00:30:00+00:00",
    ]


async def test_a_plan_s_schedule_goes_when_no_live_worker_declares_it(fleet: Fleet) -> None:
    old = fleet.kernel(reports(hourly()), "old")
    new = fleet.kernel(reports(description="v2: no schedule"), "new")
    await sync_declared(old.kernel, fleet.store)
    await announce_worker(old.kernel, "old", timedelta(minutes=1))
    assert await sync_declared(new.kernel, fleet.store) == 0  # the old worker still declares it
    assert await fleet.store.get("reports", "hourly") is not None
    await fleet.storage.persistence.retire_worker("old")
    assert await sync_declared(new.kernel, fleet.store) == 1
    assert await fleet.store.get("reports", "hourly") is None


def test_a_tick_key_fits_the_idempotency_key_limit() -> None:
    tick = START + timedelta(hours=1)
    assert (
        tick_key("reports", "hourly", tick) == "schedule:reports:hourly:2026-01-01T01:00:00+00:00"
    )
    long = tick_key("w" * 200, "hourly", tick)
    assert long.startswith("schedule:sha256:") and len(long) <= 200


def test_the_repeated_hour_of_a_fall_back_night_fires_once() -> None:
    before = datetime(2026, 10, 24, 12, tzinfo=UTC)  # 02:00-03:00 happens twice on the 25th
    first = next_after("30 2 * * *", "Europe/Paris", before)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST)
    assert next_after("30 2 * * *", "Europe/Paris", first) == datetime(
        2026, 10, 26, 1, 30, tzinfo=UTC
    )
