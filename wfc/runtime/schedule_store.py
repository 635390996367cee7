"""The schedule store port: cron schedules of workflows, and the fenced write that fires a tick.

A schedule is one row per (workflow, name). `next_due_at` is the tick it waits
for; a worker that finds it due creates the tick's run (with an idempotency
key per tick, `wfc.runtime.kernel.schedules`) and then moves `next_due_at` on
with `advance`, a conditional write that lands only while `next_due_at` is still
what the worker read. Of several workers firing the same tick, one advances the
schedule and the others change nothing; the run itself is one because its key
is. Neither depends on which worker leads or on anything held in memory.

Rows come from a plan a worker serves (`source = "plan"`, written by the
workers as they start) or from `wfc schedules add` (`source = "cli"`, left
alone by workers). The memory, SQLite and PostgreSQL stores are held to one
contract by `wfc.testing.schedules.ScheduleConformance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from wfc.runtime.records import JsonObject

ScheduleSource = Literal["plan", "cli"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRecord:
    """One schedule: its definition, whether it is paused, and where its ticks are.

    `catch_up` and `overlap` hold the values of `wfc.plan.CatchUp` and `Overlap`.
    `last_tick_at` is the last tick handled, `last_outcome` what happened to it
    (`started`, `skipped: …`, `refused: …`) and `last_run_id` the last run a tick
    started (kept across skipped ticks: it is the run an `overlap skip` waits for).
    """

    id: str
    workflow_id: str
    name: str
    cron: str
    timezone: str
    input: JsonObject
    catch_up: str
    overlap: str
    paused: bool
    source: ScheduleSource
    next_due_at: datetime
    created_at: datetime
    updated_at: datetime
    last_tick_at: datetime | None = None
    last_run_id: str | None = None
    last_outcome: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TickRecord:
    """What `advance` records of a tick it moves past."""

    tick: datetime
    outcome: str
    run_id: str | None = None  # the run the tick started (None: the last one stays)


class ScheduleStore(Protocol):
    """Schedules by (workflow, name), and their ticks fenced on `next_due_at`."""

    async def add(self, schedule: ScheduleRecord) -> bool:
        """Insert `schedule`; False, writing nothing, when its workflow has one of that name."""
        ...

    async def declare(self, schedules: Sequence[ScheduleRecord]) -> None:
        """Insert or update schedules declared in plans: a new one is inserted as given; one
        kept from a plan takes the definition given (cron, time zone, input, catch-up,
        overlap) and keeps its paused flag and last tick, its `next_due_at` replaced only
        when the cron or the time zone changed; one added from the CLI is left as it is."""

    async def get(self, workflow_id: str, name: str) -> ScheduleRecord | None:
        """The schedule, or None."""
        ...

    async def schedules(self, *, workflow_ids: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """Every schedule (of these workflows, when given), by workflow then name."""
        ...

    async def due(
        self, now: datetime, workflow_ids: Sequence[str], limit: int
    ) -> list[ScheduleRecord]:
        """Up to `limit` unpaused schedules of these workflows whose `next_due_at` is at or
        before `now`, soonest first."""
        ...

    async def next_due_at(self, workflow_ids: Sequence[str]) -> datetime | None:
        """The soonest `next_due_at` of the unpaused schedules of these workflows."""
        ...

    async def advance(
        self,
        schedule_id: str,
        expected: datetime,
        next_due_at: datetime,
        now: datetime,
        tick: TickRecord | None = None,
    ) -> bool:
        """Move the schedule's `next_due_at` from `expected` to `next_due_at`, recording
        `tick` if given, in one conditional write; False, writing nothing, when the
        schedule is gone or its `next_due_at` is no longer `expected` (another worker
        handled the tick, or the schedule was changed)."""
        ...

    async def set_paused(
        self, schedule_id: str, paused: bool, now: datetime, next_due_at: datetime | None = None
    ) -> bool:
        """Pause or resume the schedule (and move `next_due_at` there when given); False
        when it is gone."""
        ...

    async def delete(self, schedule_ids: Sequence[str]) -> int:
        """Delete these schedules; how many there were."""
        ...
