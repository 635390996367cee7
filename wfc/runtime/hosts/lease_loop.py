"""`LeaseLoop`: when a worker's idle slots look in the queue for jobs, and how many they lease.

Nothing waits on a poll when it need not. Jobs the worker queued for itself
(`wfc.runtime.handoff`) are handed to its slots without a dequeue; a dequeue
runs only when something may be queued: a wakeup (on PostgreSQL a LISTEN
connection wakes slots when another process enqueues jobs), a previous
dequeue that filled every free slot, jobs queued beyond the free slots, a job
queued here to wait that falls due (`DueJobs`), or `job_poll_interval` passing
without any of these, the fallback.

Apart from the slots (`wfc.runtime.hosts.job_slots`) because this is the
decision of when to ask the database, and the slots are what runs what it
answered; the worker (`wfc.runtime.hosts.worker`) wakes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from wfc.runtime.hosts.due_jobs import DueJobs
from wfc.runtime.hosts.health import DatabaseHealth
from wfc.runtime.hosts.waiting import Signal, wait_at_most
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel
from wfc.runtime.ports import JobTransport


class IdleSlots(Protocol):
    """What the lease loop needs of the worker's job slots (`job_slots.JobSlots`, which
    wakes it: a protocol, so that the two modules do not import each other)."""

    handed: list[JobRecord]  # leased to the worker, waiting for a free slot

    def idle(self) -> int:
        """How many slots run no job."""
        ...

    def start(self, job: JobRecord) -> None:
        """Run `job`, leased to this worker, in a slot of its own."""
        ...

    def start_handed(self, free: int) -> None:
        """Start the first `free` of the handed jobs."""
        ...


class LeaseLoop:
    """The one loop of a worker that leases jobs for its free slots, and what wakes it."""

    def __init__(
        self,
        kernel: Kernel,
        jobs: JobTransport,
        *,
        run_id: str | None,
        queues: Sequence[str],
        job_poll_interval: timedelta,
        health: DatabaseHealth,
    ) -> None:
        self._kernel = kernel
        self._jobs = jobs
        self._run_id = run_id
        self._queues = tuple(queues)
        self._poll = job_poll_interval
        self._health = health
        # Whether any stage it serves is under a fleet limit: if none is, a dequeue need not
        # look for limited jobs (a statement saved on every poll).
        self._serves_limits = any(
            stage.concurrency is not None or stage.rate is not None
            for workflow in kernel.deps.registry.workflows()
            for stage in workflow.plan.stages
        )
        self.signal = Signal()  # a slot freed, jobs were handed, or some may be queued
        # Whether a dequeue may find something (`nothing_queued_yet` says not yet).
        self.maybe_queued = True
        self._due = DueJobs()  # when jobs queued here to wait fall due

    def wake(self) -> None:
        """Jobs may be queued now: look at once."""
        self.maybe_queued = True
        self.signal.fire()

    def due_in(self, delay: float) -> None:
        """A job queued here falls due in `delay` seconds: look for it then."""
        self._due.add(delay)
        self.signal.fire()

    def nothing_queued_yet(self) -> None:
        """The next dequeue would find nothing (a one-run host started before its run)."""
        self.maybe_queued = False

    async def run(self, slots: IdleSlots, stopping: asyncio.Event, gave_up: asyncio.Event) -> None:
        """Lease as many jobs as there are free slots, in one query, and start each, until
        `stopping`; once `gave_up`, lease nothing more (the worker is stopping).

        One loop per worker (not one per slot) so a wakeup costs one dequeue,
        however many slots are idle.
        """
        while not stopping.is_set():
            woken = self.signal.arm()
            free = slots.idle()
            if gave_up.is_set():  # lease nothing more; serve() is stopping
                await wait_at_most(stopping, timedelta(days=1))
                continue
            if free <= 0:
                await wait_at_most(woken, self._poll)
                continue
            if slots.handed:
                slots.start_handed(free)
                continue
            wait, fell_due = self._due.wait(self._poll)
            self.maybe_queued = self.maybe_queued or fell_due
            if not self.maybe_queued:
                await wait_at_most(woken, wait)
                if not woken.is_set():  # a poll: look whatever the wakeups said
                    self.maybe_queued = True
                continue
            self.maybe_queued = False
            try:
                gone = self._health.check_file()
                if gone is not None:  # lease nothing from a file nobody else will see
                    raise gone
                # Only jobs of the plans this worker serves: others wait for their workers.
                plans = self._kernel.deps.registry.plans()
                leased = await self._jobs.dequeue(
                    free,
                    run_id=self._run_id,
                    plans=plans,
                    queues=self._queues,
                    limited=self._serves_limits,
                )
            except Exception as error:
                self.maybe_queued = True
                delay = self._health.failed("dequeue", error)
                await wait_at_most(stopping, timedelta(seconds=delay))
                continue
            self._health.ok()
            for job in leased:
                slots.start(job)
            if len(leased) == free:  # there may be more than there were slots
                self.maybe_queued = True
