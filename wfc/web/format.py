"""Jinja filters for the dashboard: ages, durations, money, short ids, JSON-free times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any


def age(when: datetime | None, now: datetime) -> str:
    """How long ago, coarsely: `12s`, `5m`, `3h`, `2d`."""
    if when is None:
        return ""
    seconds = max(int((now - when).total_seconds()), 0)
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(ms: int | float | None) -> str:
    """A duration in the unit that reads best; empty when unknown."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 3_600_000:.1f} h"


def money(cost: float | None) -> str:
    return "" if not cost else f"${cost:.4f}"


def short(run_id: str) -> str:
    """The first 8 characters of an id: enough to tell runs apart on one page."""
    return run_id[:8]


def stamp(when: datetime | None) -> str:
    """A UTC time, to the second."""
    return "" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")


def status_class(status: Any) -> str:
    """The CSS class of a status: `st-completed`, `st-not-started`…"""
    return "st-" + str(status).lower().replace(" ", "-")


def fingerprint(value: str) -> str:
    """`sha256:0123456789ab…`: the scheme and 12 hex digits."""
    scheme, _, digest = value.partition(":")
    return f"{scheme}:{digest[:12]}" if digest else value[:16]


FILTERS: dict[str, Callable[..., str]] = {
    "age": age,
    "duration": duration,
    "money": money,
    "short": short,
    "stamp": stamp,
    "status_class": status_class,
    "fingerprint": fingerprint,
}
