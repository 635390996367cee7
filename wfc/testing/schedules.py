"""The schedule store's conformance suite, run on memory, SQLite and PostgreSQL.

A schedule is unique by (workflow, name); plan declarations update their own
rows and leave the CLI's alone, moving `next_due_at` only when the cron or time
zone changed; `due` and `next_due_at` see unpaused schedules of the workflows
asked about; and `advance` lands only while `next_due_at` is what the caller
read, so of many concurrent advances of one tick exactly one wins. Subclass
`ScheduleConformance` with a `schedule_ports` fixture giving `SchedulePorts`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from wfc.runtime.adapters.memory import FakeClock
from wfc.runtime.schedule_store import ScheduleRecord, ScheduleStore, TickRecord


@dataclass(slots=True)
class SchedulePorts:
    clock: FakeClock
    store: ScheduleStore


def a_schedule(
    clock: FakeClock,
    name: str = "nightly",
    workflow_id: str = "wf",
    *,
    due_in: timedelta = timedelta(hours=1),
    source: str = "plan",
) -> ScheduleRecord:
    """A schedule due `due_in` from now."""
    now = clock.now()
    return ScheduleRecord(
        id=f"{workflow_id}-{name}",
        workflow_id=workflow_id,
        name=name,
        cron="0 * * * *",
        timezone="UTC",
        input={"text": "hello", "n": [1, None]},
        catch_up="latest",
        overlap="skip",
        paused=False,
        source="cli" if source == "cli" else "plan",
        next_due_at=now + due_in,
        created_at=now,
        updated_at=now,
    )


class ScheduleConformance:
    async def test_a_schedule_is_unique_by_workflow_and_name(
        self, schedule_ports: SchedulePorts
    ) -> None:
        store, clock = schedule_ports.store, schedule_ports.clock
        first = a_schedule(clock)
        assert await store.add(first) is True
        assert await store.add(replace(first, id="other", cron="5 * * * *")) is False
        assert await store.add(a_schedule(clock, workflow_id="wf2")) is True
        assert await store.get("wf", "nightly") == first
        assert await store.get("wf", "nobody") is None
        listed = await store.schedules()
        assert [(s.workflow_id, s.name) for s in listed] == [("wf", "nightly"), ("wf2", "nightly")]
        assert [s.workflow_id for s in await store.schedules(workflow_ids=["wf2"])] == ["wf2"]

    async def test_declaring_updates_plan_rows_and_leaves_cli_rows_alone(
        self, schedule_ports: SchedulePorts
    ) -> None:
        store, clock = schedule_ports.store, schedule_ports.clock
        planned = a_schedule(clock, "planned")
        added = a_schedule(clock, "added", source="cli")
        await store.declare([planned])
        await store.add(added)
        await store.set_paused(planned.id, True, clock.now())
        clock.advance(minutes=5)
        later = clock.now() + timedelta(days=1)
        await store.declare(
            [
                replace(planned, id="x", input={"text": "new"}, next_due_at=later),
                replace(added, id="y", cron="1 1 * * *", next_due_at=later),
            ]
        )
        kept = await store.get("wf", "planned")
        assert kept is not None and kept.id == planned.id and kept.input == {"text": "new"}
        assert kept.next_due_at == planned.next_due_at  # same cron and zone: same tick
        assert kept.paused is True  # an operator's pause outlives a worker's restart
        await store.declare([replace(planned, cron="30 * * * *", next_due_at=later)])
        moved = await store.get("wf", "planned")
        assert moved is not None and moved.cron == "30 * * * *" and moved.next_due_at == later
        assert await store.get("wf", "added") == added
        await store.declare([])

    async def test_due_and_next_due_see_unpaused_schedules_of_the_workflows_served(
        self, schedule_ports: SchedulePorts
    ) -> None:
        store, clock = schedule_ports.store, schedule_ports.clock
        soon = a_schedule(clock, "soon", due_in=timedelta(minutes=1))
        later = a_schedule(clock, "later", due_in=timedelta(minutes=2))
        paused = a_schedule(clock, "paused", due_in=timedelta(seconds=30))
        elsewhere = a_schedule(clock, "soon", "other", due_in=timedelta(seconds=10))
        for schedule in (later, soon, paused, elsewhere):
            await store.add(schedule)
        await store.set_paused(paused.id, True, clock.now())
        assert await store.next_due_at(["wf"]) == soon.next_due_at
        assert await store.next_due_at(["nobody"]) is None
        assert await store.next_due_at([]) is None
        assert await store.due(clock.now(), ["wf"], 10) == []
        clock.advance(minutes=3)
        assert [s.name for s in await store.due(clock.now(), ["wf"], 10)] == ["soon", "later"]
        assert [s.name for s in await store.due(clock.now(), ["wf"], 1)] == ["soon"]
        assert await store.due(clock.now(), [], 10) == []
        resumed_at = clock.now() + timedelta(hours=1)
        assert await store.set_paused(paused.id, False, clock.now(), resumed_at) is True
        resumed = await store.get("wf", "paused")
        assert resumed is not None and not resumed.paused and resumed.next_due_at == resumed_at
        assert await store.set_paused("gone", True, clock.now()) is False

    async def test_advance_lands_only_from_the_tick_read(
        self, schedule_ports: SchedulePorts
    ) -> None:
        store, clock = schedule_ports.store, schedule_ports.clock
        schedule = a_schedule(clock)
        await store.add(schedule)
        tick = schedule.next_due_at
        after = tick + timedelta(hours=1)
        started = TickRecord(tick=tick, outcome="started", run_id="run-1")
        assert await store.advance(schedule.id, tick, after, clock.now(), started) is True
        assert await store.advance(schedule.id, tick, after, clock.now(), started) is False
        skipped = TickRecord(tick=after, outcome="skipped: run-1 is RUNNING")
        assert await store.advance(
            schedule.id, after, after + timedelta(hours=1), clock.now(), skipped
        )
        row = await store.get("wf", "nightly")
        assert row is not None
        assert row.next_due_at == after + timedelta(hours=1) and row.last_tick_at == after
        assert row.last_outcome == "skipped: run-1 is RUNNING"
        assert row.last_run_id == "run-1"  # a skipped tick keeps the run it waited for
        assert await store.advance("gone", tick, after, clock.now()) is False

    async def test_of_many_concurrent_advances_of_one_tick_one_wins(
        self, schedule_ports: SchedulePorts
    ) -> None:
        store, clock = schedule_ports.store, schedule_ports.clock
        schedule = a_schedule(clock)
        await store.add(schedule)
        tick: datetime = schedule.next_due_at
        record = TickRecord(tick=tick, outcome="started", run_id="r")
        won = await asyncio.gather(
            *(
                store.advance(schedule.id, tick, tick + timedelta(hours=1), clock.now(), record)
                for _ in range(8)
            )
        )
        assert sorted(won) == [False] * 7 + [True]

    async def test_deleted_schedules_are_gone(self, schedule_ports: SchedulePorts) -> None:
        store, clock = schedule_ports.store, schedule_ports.clock
        await store.add(a_schedule(clock, "a"))
        await store.add(a_schedule(clock, "b"))
        assert await store.delete(["wf-a", "wf-a", "nothing"]) == 1
        assert await store.delete([]) == 0
        assert [s.name for s in await store.schedules()] == ["b"]
