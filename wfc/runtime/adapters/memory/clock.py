"""Clocks and id sources: the real ones, and the controllable ones tests use."""

from __future__ import annotations

import itertools
import os
import time
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
    """Time-ordered UUIDs (version 7, RFC 9562): unique across processes and machines,
    and sorted by when they were made to the millisecond.

    The order is for the databases: rows keyed by random ids land on random leaf pages
    of every index on the key, and each transaction writes every page it touched to
    SQLite's WAL (or PostgreSQL's); ids made in the same moments share the last pages.
    48 bits of Unix milliseconds, then 74 random bits (with the version and variant).
    """

    def new_id(self) -> str:
        value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
        value = value & _VERSION_CLEARED | _VERSION_7
        digits = f"{value:032x}"
        return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


# The version nibble (bits 76-79: 7) and the variant (bits 62-63: 0b10) of a UUIDv7.
_VERSION_CLEARED = ~(0xF << 76 | 0x3 << 62)
_VERSION_7 = 0x7 << 76 | 0x2 << 62


class SequentialIds:
    """`<prefix>-1`, `<prefix>-2` …: readable ids for tests and examples."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"
