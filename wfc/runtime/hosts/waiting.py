"""The waiting primitives a worker's loops share: an edge-triggered signal and bounded waits.

Every loop of `WorkerHost` (the job slots' lease loop, the orchestrator, the
LISTEN connection) sleeps until either a wakeup or a deadline; these are the
few lines that say how, kept apart so that each loop's module reads as what it
does rather than how it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any


class Signal:
    """An edge-triggered wakeup: `wait` returns once `fire` is called after `arm`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def arm(self) -> asyncio.Event:
        """The event the next `fire` sets; take it before looking for work, wait on it after."""
        return self._event

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


async def first_of(*waits: Awaitable[Any]) -> None:
    """Return when the first of `waits` does; the others are cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def wait_at_most(event: asyncio.Event, timeout: timedelta) -> None:
    """Wait until `event` is set or `timeout` passes, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout.total_seconds())
