"""Number types for options whose values reach a database column or a `timedelta`.

click's `IntRange(min=1)` takes any integer and `float` takes `nan`, `inf` and `1e308`:
those reached SQLite (which stores 64-bit integers), PostgreSQL or `timedelta` and ended
in a traceback, or in a worker that retried "database unavailable" forever. These types
refuse them as usage errors (exit 2) instead.
"""

from __future__ import annotations

import math
from typing import Any

import click

BIGINT_MAX = 2**63 - 1
"""The largest integer SQLite and a PostgreSQL BIGINT (or LIMIT) store."""

INTEGER_MAX = 2**31 - 1
"""The largest integer a PostgreSQL INTEGER column stores."""

LONGEST_SECONDS = 100 * 365 * 86_400
"""A century: longer than any duration meant, and a date that far off still exists."""


def count(*, at_most: int = BIGINT_MAX) -> click.IntRange:
    """A whole number from 1 to `at_most`."""
    return click.IntRange(min=1, max=at_most)


class Seconds(click.FloatRange):
    """A finite number of seconds from `min` (if given) up to a century."""

    name = "seconds"

    def __init__(self, min: float | None = None) -> None:
        super().__init__(min=min, max=LONGEST_SECONDS)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):  # every comparison with NaN is false, so the range keeps it
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds
