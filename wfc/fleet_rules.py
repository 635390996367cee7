"""The rules for queues, fleet limits and schedules that the compiler and the Python builder share.

Both front ends must refuse the same plans, with the same reasons, so the tests
of what is valid live here once: a queue's name, a rate's unit, a cron
expression (read by `cronsim`, as the scheduler reads it) and a time zone (a
key of the IANA database `zoneinfo` reads). The plan models stay plain data.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from datetime import UTC, datetime
from functools import cache

from cronsim import CronSim, CronSimError

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
"""What a queue's name (and a shared rate's name) may be: it is a key in the database and a
`--queue` argument on a command line, so plain characters and a bounded length."""

RATE_UNITS_MS: dict[str, int] = {
    "second": 1000,
    "minute": 60_000,
    "hour": 3_600_000,
    "day": 86_400_000,
}
"""The windows a `rate N per <unit>` counts in."""

SCALAR_PER_TYPES = ("str", "int", "bool")
"""Primitive types a `concurrency … per` field may have (enums too): a limit key is one
value compared for equality, so not a float, a list, a record or free JSON."""


def name_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be a queue's (or a shared rate's) name, or None when it can."""
    if QUEUE_NAME.fullmatch(name):
        return None
    if not name:
        return f"{what} is empty"
    if len(name) > 100:
        return f"{what} is {len(name)} characters long, more than 100"
    bad = sorted({c for c in name if not QUEUE_NAME.fullmatch(c)})
    shown = ", ".join(f"`{c}`" if c.strip() else repr(c) for c in bad)
    return f"{what} `{name}` has characters it may not have: {shown}"


def cron_problem(expression: str) -> str | None:
    """cronsim's reason `expression` is not a cron expression, or None when it is one."""
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        return str(error) or "not a cron expression"
    return None


def timezone_problem(name: str) -> str | None:
    """Why `name` is not a time zone `zoneinfo` knows, or None when it is one."""
    try:
        zoneinfo.ZoneInfo(name)
    except zoneinfo.ZoneInfoNotFoundError:
        return f"unknown time zone `{name}`"
    except (ValueError, OSError):
        return f"`{name}` is not the name of a time zone"
    return None


@cache
def _zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def nearest_timezone(name: str) -> str | None:
    """The known time zone closest to `name` (case aside), for a did-you-mean; None if none is."""
    by_lower = {zone.lower(): zone for zone in _zones()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.75)
    return by_lower[close[0]] if close else None
