"""Cron arithmetic for schedules: which instants are ticks, in the schedule's time zone.

`cronsim` walks a five-field cron expression from an aware datetime in the
schedule's zone, so a tick at 02:30 on the night clocks spring forward fires
once at 03:00, and one in the hour that repeats when they fall back fires once
(the first time). Everything here is pure: instants in, instants (UTC) out,
so the firing logic can be tested against a fake clock and the CLI can check
a cron and a time zone without touching the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from wfc.plan import CatchUp

ON_TIME = timedelta(seconds=30)
"""A tick found due within this of its time counts as on time, not missed: `catch_up skip`
still fires it (a worker wakes at the tick, but a busy or restarting one may be late)."""

_ONE_SECOND = timedelta(seconds=1)


class CronError(ValueError):
    """A cron expression or a time zone that cannot be used; the message is one line."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; `CronError` when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None


def check(cron: str, timezone: str) -> None:
    """Refuse a cron expression or time zone that no tick can be computed from."""
    tz = zone(timezone)
    try:
        next(CronSim(cron, datetime(2000, 1, 1, tzinfo=tz)))
    except (CronSimError, StopIteration) as error:
        raise CronError(f"bad cron expression {cron!r}: {error or 'it never fires'}") from None


def next_after(cron: str, timezone: str, instant: datetime) -> datetime:
    """The first tick strictly after `instant`, in UTC."""
    return next(CronSim(cron, instant.astimezone(zone(timezone)))).astimezone(UTC)


def latest_at_or_before(cron: str, timezone: str, instant: datetime) -> datetime:
    """The last tick at or before `instant`, in UTC (cron ticks fall on whole minutes, so
    walking back from the next whole second finds a tick at `instant` itself)."""
    start = (instant + _ONE_SECOND).replace(microsecond=0).astimezone(zone(timezone))
    return next(CronSim(cron, start, reverse=True)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class DueTicks:
    """What one pass does with a schedule found due: the ticks to fire, in order, and when
    it is due again after the last of them (or after `now` when there are none)."""

    ticks: tuple[datetime, ...]
    then_due: datetime


def due_ticks(
    cron: str,
    timezone: str,
    catch_up: CatchUp,
    due_at: datetime,
    now: datetime,
    *,
    max_ticks: int = 100,
) -> DueTicks:
    """The ticks to fire for a schedule due at `due_at` (a tick, at or before `now`).

    `all`: `due_at` and every tick after it up to `now`, at most `max_ticks` (the rest
    are still due after them: the next pass goes on). `latest`: the last tick up to `now`
    only. `skip`: that tick only if it is on time (`ON_TIME`), else none.
    """
    if catch_up is CatchUp.ALL:
        ticks = [due_at]
        following = next_after(cron, timezone, due_at)
        while following <= now and len(ticks) < max_ticks:
            ticks.append(following)
            following = next_after(cron, timezone, following)
        return DueTicks(tuple(ticks), following)
    latest = latest_at_or_before(cron, timezone, now)
    then_due = next_after(cron, timezone, now)
    if latest < due_at:  # due_at is no tick (the cron changed): nothing was missed
        return DueTicks((), then_due)
    if catch_up is CatchUp.SKIP and now - latest > ON_TIME:
        return DueTicks((), then_due)
    return DueTicks((latest,), then_due)
