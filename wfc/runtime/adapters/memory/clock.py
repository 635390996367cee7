"""Clocks and id sources: the real ones, and the controllable ones tests use."""

from __future__ import annotations

import itertools
import os
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
    """Random UUID4 ids: unique across processes and machines.

    The text `str(uuid.uuid4())` gives, made from the operating system's randomness as
    `uuid4` draws it, but drawn for `_BATCH` ids at a time (`_uuid4_texts`): a run takes
    about ten ids (its own, its stages', its jobs', its transactions' causation ids), and
    `uuid4` made a system call and a checked `UUID` object for each only to format it.
    """

    def new_id(self) -> str:
        try:
            return _READY.pop()
        except IndexError:
            _READY.extend(_uuid4_texts(_BATCH))
            return _READY.pop()


_BATCH = 128
_READY: list[str] = []
"""Ids drawn and not handed out yet. `list.pop` and `list.extend` are atomic under the
GIL, so threads sharing it never get the same id; a forked child drops what it inherited
(`os.register_at_fork`), else parent and child would hand out the same ids."""

# uuid4's version (4) and RFC 4122 variant bits, as `uuid.UUID(version=4)` sets them.
_KEEP = ~(0xF000 << 64) & ~(0xC000 << 48)
_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4_texts(count: int) -> list[str]:
    """`count` texts of random version-4 UUIDs, as `str(uuid.uuid4())` writes them."""
    drawn = os.urandom(16 * count)
    texts = []
    for start in range(0, 16 * count, 16):
        digits = "%032x" % (int.from_bytes(drawn[start : start + 16]) & _KEEP | _SET)
        texts.append(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}")
    return texts


os.register_at_fork(after_in_child=_READY.clear)


class SequentialIds:
    """`<prefix>-1`, `<prefix>-2` …: readable ids for tests and examples."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"
