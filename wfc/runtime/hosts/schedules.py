"""When a worker fires schedules: at the soonest tick of those it serves, and every tick.

`ScheduleTimer` keeps the worker's next look in monotonic time, as the worker
keeps its next poll of suspended stages: a pass fires what is due
(`fire_due_schedules`) and arms the timer for the soonest `next_due_at` after
it, so a tick fires when it falls, not up to a maintenance interval later. The
maintenance tick looks again (`wake`) as the fallback that sees schedules
added from the CLI or by another worker. The first pass, and one a minute
after, write the schedules the served plans declare (`sync_declared`).
"""

from __future__ import annotations

import time
from datetime import timedelta

from wfc.runtime.kernel import Kernel
from wfc.runtime.kernel.schedules import FireResult, fire_due_schedules, sync_declared
from wfc.runtime.schedule_store import ScheduleStore

RESYNC_EVERY = timedelta(minutes=1)


class ScheduleTimer:
    """A worker's schedule passes: when the next one is due, and running it."""

    def __init__(
        self, kernel: Kernel, store: ScheduleStore, *, resync_every: timedelta = RESYNC_EVERY
    ) -> None:
        self.kernel = kernel
        self.store = store
        self._resync_every = resync_every.total_seconds()
        self._due: float | None = 0.0  # monotonic; the first pass at once
        self._synced_at: float | None = None

    def due_at(self) -> float | None:
        """The monotonic time of the next pass, or None when nothing is due."""
        return self._due

    def is_due(self) -> bool:
        return self._due is not None and time.monotonic() >= self._due

    def wake(self) -> None:
        """Look at once (the maintenance tick's fallback pass)."""
        self._due = time.monotonic()

    def retry_at(self, monotonic: float) -> None:
        """A pass failed: try again then."""
        self._due = monotonic

    async def run(self) -> FireResult:
        """Sync the declared schedules if due, fire what is due, and arm the next pass."""
        self._due = None
        now = time.monotonic()
        if self._synced_at is None or now - self._synced_at >= self._resync_every:
            await sync_declared(self.kernel, self.store)
            self._synced_at = now
        fired = await fire_due_schedules(self.kernel, self.store)
        if fired.more:
            self._due = time.monotonic()
        elif fired.next_due_at is not None:
            delay = (fired.next_due_at - self.kernel.deps.clock.now()).total_seconds()
            self._due = time.monotonic() + max(0.0, delay)
        return fired
