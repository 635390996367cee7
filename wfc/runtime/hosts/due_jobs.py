"""`DueJobs`: when the jobs a worker queued to wait fall due, so it looks for each then."""

from __future__ import annotations

import heapq
import time
from datetime import timedelta

LATE = 0.005  # seconds: a dequeue a hair early would find the job not yet due and wait a poll


class DueJobs:
    """The moments (`time.monotonic`) at which jobs queued by this worker to wait (a
    sleep's or a signal timeout's timer, `wfc.runtime.handoff.due_later`) fall due: its
    lease loop looks for each then, not at its next poll of the queue."""

    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: list[float] = []  # a heap

    def add(self, delay: float) -> None:
        """A job falls due in `delay` seconds."""
        heapq.heappush(self._at, time.monotonic() + max(0.0, delay) + LATE)

    def wait(self, poll: timedelta) -> tuple[timedelta, bool]:
        """How long the lease loop may wait for a wakeup (`poll`, or less when a job it
        knows of falls due sooner), and whether a job fell due since it last asked."""
        now = time.monotonic()
        fell_due = False
        while self._at and self._at[0] <= now:
            heapq.heappop(self._at)
            fell_due = True
        if not self._at:
            return poll, fell_due
        return min(poll, timedelta(seconds=self._at[0] - now)), fell_due
