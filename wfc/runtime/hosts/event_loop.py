"""The event loop a host process runs on: uvloop where it is installed, asyncio's otherwise.

A worker spends a fifth of its CPU in the event loop itself (one wakeup per
database round trip, ~24 per stage). uvloop, the loop asyncpg is built for,
does the same work in C; the benchmark's worker CPU per stage drops by about
a tenth. It is not available on Windows, where asyncio's loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What `asyncio.Runner(loop_factory=…)` should make: a uvloop loop when possible."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, or a trimmed install
        return asyncio.new_event_loop
    return uvloop.new_event_loop
