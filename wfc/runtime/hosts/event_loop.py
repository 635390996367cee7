"""The event loop a host process runs on: uvloop where it is installed, asyncio's otherwise.

A worker spends about a fifth of its CPU in the event loop itself (a wakeup
per database round trip, ~24 per stage). uvloop, the loop asyncpg is built
for, does that work in C: worker CPU per stage on PostgreSQL drops by 5–6%.
It is not available on Windows, where asyncio's loop is used.
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
