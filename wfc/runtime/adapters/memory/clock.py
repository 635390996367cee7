"""Clocks and id sources: the real ones, and the controllable ones tests use."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to, so tests of timeouts and polls never sleep."""

    DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by `delta` or by keyword units (`seconds=30`, `ms=…` as `milliseconds`)."""
        step = delta if delta is not None else timedelta(**units)
        if step < timedelta(0):
            raise ValueError("a clock cannot go backwards; use set()")
        self._now += step
        return self._now

    def set(self, instant: datetime) -> None:
        """Jump to `instant`."""
        if instant.tzinfo is None:
            raise ValueError("FakeClock needs timezone-aware instants")
        self._now = instant


class UuidIds:
    """Random UUID4 ids: unique across processes and machines."""

    def new_id(self) -> str:
        return str(uuid.uuid4())


class SequentialIds:
    """`<prefix>-1`, `<prefix>-2` …: readable ids for tests and examples."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"
