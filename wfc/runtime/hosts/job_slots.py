"""`JobSlots`: a worker's job slots, and what each does with the job it is given.

Each of `concurrency` slots runs one job at a time with a heartbeat
(`steps.process_job`) and settles it. A slot that finishes a stage may be
handed the next group, already leased to this worker (`wfc.runtime.handoff`):
it keeps the first of those jobs for itself and runs it next, on the same
pinned connection, and the rest wait in `handed` for the lease loop
(`wfc.runtime.hosts.lease_loop`) to start them in slots as they free up.

What a slot holds as the worker stops goes back for another worker
(`GiveBack`): its next job, the job it was cancelled in, and the handed jobs
never started.

Apart from the worker (`wfc.runtime.hosts.worker`), which decides what the
slots are handed, because this is where the jobs run; apart from the lease
loop, because that decides when to ask the queue for more.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from datetime import timedelta
from typing import Any

from wfc.runtime.handoff import JobTaker, handing_off_to
from wfc.runtime.hosts.flusher import OutboxFlusher
from wfc.runtime.hosts.give_back import GiveBack
from wfc.runtime.hosts.lease_loop import LeaseLoop
from wfc.runtime.hosts.orchestrator import Orchestrator
from wfc.runtime.hosts.steps import process_job
from wfc.runtime.hosts.waiting import Signal
from wfc.runtime.hosts.worker_stats import JobTally
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel

log = logging.getLogger("wfc.worker")


class JobSlots:
    """The tasks running in a worker's slots, the jobs handed to it waiting for a slot, and
    each finishing slot's own next job; `start` runs a job in a slot of its own."""

    def __init__(
        self,
        kernel: Kernel,
        *,
        taker: JobTaker,
        worker_id: str,
        concurrency: int,
        heartbeat_interval: timedelta,
        leasing: LeaseLoop,
        orchestrator: Orchestrator,
        give_back: GiveBack,
    ) -> None:
        self._kernel = kernel
        self._taker = taker  # the worker: jobs a slot's stage queues may be handed to it
        self._worker_id = worker_id
        self.concurrency = concurrency
        self._heartbeat_interval = heartbeat_interval
        self._leasing = leasing
        self._orchestrator = orchestrator
        self._give_back = give_back
        self.running: set[asyncio.Task[None]] = set()
        self.handed: list[JobRecord] = []  # leased to the worker, not started yet
        self.next: dict[asyncio.Task[Any], JobRecord] = {}  # a slot's own next job
        self.in_flight: dict[str, JobRecord] = {}
        self.tally = JobTally()
        # Per run, fired when a transaction of this kernel ended it (`run_ended`): held by
        # its waiters (`run_and_wait`), and gone from here once none holds it.
        self.run_ends: weakref.WeakValueDictionary[str, Signal] = weakref.WeakValueDictionary()
        self._stopping = asyncio.Event()
        self._flusher: OutboxFlusher | None = None

    def open(self, stopping: asyncio.Event, flusher: OutboxFlusher) -> None:
        """The worker started: its slots stop taking their next job once `stopping` is set,
        and wake `flusher` when a job's commit appended events."""
        self._stopping = stopping
        self._flusher = flusher

    def idle(self) -> int:
        """How many slots run no job."""
        return self.concurrency - len(self.running)

    def finishing_slot(self) -> asyncio.Task[Any] | None:
        """The job slot calling, if it has no next job of its own yet."""
        task = asyncio.current_task()
        if task is not None and task in self.running and task not in self.next:
            return task
        return None

    def hold(self, jobs: list[JobRecord]) -> bool:
        """Keep `jobs` (leased to this worker) until slots free up; a finishing slot keeps
        the first for itself, to run next on its pinned connection. Whether any are left
        waiting for a free slot (the lease loop starts them)."""
        # `finishing_slot`, written out: this runs for every group handed over.
        slot = asyncio.current_task()
        if jobs and slot is not None and slot in self.running and slot not in self.next:
            self.next[slot] = jobs.pop(0)
        self.handed.extend(jobs)
        return bool(jobs)

    def start_handed(self, free: int) -> None:
        """Start the first `free` of the handed jobs."""
        handed, self.handed = self.handed[:free], self.handed[free:]
        for job in handed:
            self.start(job)

    def start(self, job: JobRecord) -> None:
        """Run `job`, leased to this worker, in a slot of its own."""
        task = asyncio.create_task(self._run_slot(job), name=f"slot:{job.id}")
        self.running.add(task)
        task.add_done_callback(self._finished)

    async def wind_down(self, grace: timedelta, hurry: asyncio.Event) -> asyncio.Future[Any]:
        """Wait up to `grace` (until `hurry` is set, if sooner) for the running jobs, then
        cancel those left, which hold their jobs to give back (`GiveBack`); the future is
        done once every slot has ended."""
        in_flight = list(self.running)
        slots_done = asyncio.ensure_future(asyncio.gather(*in_flight, return_exceptions=True))
        hurried = asyncio.ensure_future(hurry.wait())
        either: list[asyncio.Future[Any]] = [slots_done, hurried]
        await asyncio.wait(
            either, timeout=grace.total_seconds(), return_when=asyncio.FIRST_COMPLETED
        )
        hurried.cancel()
        for task in in_flight:
            task.cancel()
        return slots_done

    def hand_back_unstarted(self) -> None:
        """Hold the handed jobs never started, to give back with the rest (`GiveBack`)."""
        self._give_back.hold(self.handed)
        self.handed.clear()

    async def _run_slot(self, job: JobRecord) -> None:
        """Run `job`, then each job it handed to this slot, over one pinned connection."""
        slot = asyncio.current_task()
        assert slot is not None
        try:
            async with self._kernel.deps.pinning.pinned():
                next_job: JobRecord | None = job
                while next_job is not None:
                    await self._run_job(next_job)
                    next_job = None if self._stopping.is_set() else self.next.pop(slot, None)
        finally:
            left = self.next.pop(slot, None)
            if left is not None:  # stopping or cancelled: give it back with the rest
                self._give_back.hold([left])

    def run_ended(self, run_id: str) -> None:
        """A transaction of this worker's kernel ended `run_id` (`Deps.run_end_listeners`):
        its waiters here look at it now."""
        signal = self.run_ends.get(run_id)
        if signal is not None:
            signal.fire()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self._leasing.signal.fire()
        self._orchestrator.slot_freed()  # runs left for want of room are claimed now

    async def _run_job(self, job: JobRecord) -> None:
        self.in_flight[job.id] = job
        started = time.monotonic()
        try:
            with handing_off_to(self._taker):
                outcome = await process_job(
                    self._kernel, job, heartbeat_every=self._heartbeat_interval, watch_run=True
                )
        except asyncio.CancelledError:
            self._give_back.hold([job])
            raise
        except Exception:
            # The job stays RUNNING; the stale-lease reaper gives it to a worker later.
            log.exception("job %s raised; its lease will be reaped", job.id)
            return
        finally:
            self.in_flight.pop(job.id, None)
            if job.limits is not None:
                # Its limit has a free slot now, and jobs may wait for it that no wakeup
                # announces: look at once rather than at the next poll.
                self._leasing.maybe_queued = True
        if self._flusher is not None:
            self._flusher.wake()  # the job's commit appended its events
        if outcome.retried:  # due again soon, perhaps at once: look for it
            self._leasing.maybe_queued = True
        if outcome.next_poll_at is not None:
            self._orchestrator.poll_due_at(outcome.next_poll_at)
        self.tally.count(self._worker_id, job, outcome, started)
