"""`WorkerHost`: the long-running worker (spec §9.2), with wakeups instead of waiting on polls.

Two kinds of task share one kernel. The orchestrator claims pending runs and,
every `orchestration_interval`, runs the full maintenance tick (claim, poll
suspended stages, reap stale leases, flush the outbox, reap stuck runs). Each
of `concurrency` job slots leases one job at a time, executes it with a
heartbeat, and settles it.

A worker claims only as many runs as it has free slots, so every run it claims
starts at once (its first stage handed to it), and runs it cannot start now
stay PENDING for a worker that can: no run waits behind a busy worker's full
slots, and no job is queued PENDING only to wake every worker into a race for
it. A slot that frees up while runs wait wakes the orchestrator to claim again.

A created run wakes every worker listening, but only one of them, the claim
lead, claims it (`wfc.runtime.ports.Listening`): were all to claim, all but one
would spend a transaction finding nothing, for every run. The lead that runs
out of room passes the lead, and the runs, on to a worker with room; one that
stops hands it over as it goes; one that dies lets go of it with its
connection, and the others, which poll every `job_poll_interval`, take it.

Nothing waits on a poll when it need not: a slot that finishes a stage queues
the next group already leased to this worker, as far as it has free slots
(`wfc.runtime.handoff`: no dequeue, and no other worker woken to race for
it), runs the first of those jobs itself, on the same pinned connection,
and wakes the idle slots for the rest; on PostgreSQL
a LISTEN connection wakes slots when another process enqueues jobs and the
orchestrator when a run is created. Polling stays as the fallback: without a
wakeup source (SQLite), the orchestrator also claims new runs every
`job_poll_interval`. Suspended stages are checked when they are due (the time
a stage's suspension or its last check gave, its `poll every`), not only on
the tick.

With `run_id`, the worker serves that run alone (what `wfc run` does): it claims
and leases nothing else, and its ticks hand it no other run's jobs.

`stop()` (or SIGTERM/SIGINT under `serve()`) stops leasing and claiming, lets
in-flight jobs finish for `shutdown_grace`, then cancels the rest and releases
their jobs back to PENDING so another worker takes them; no job is left RUNNING.

Plain `def` stages run in the worker's own thread pool (`StageThreads`), sized
for its slots plus `max_abandoned_threads`: a stage that times out, or whose run
ends under it (the heartbeat checks), frees its slot at once, but Python cannot
stop its thread. A worker holding more abandoned threads than that stops leasing,
stops as on SIGTERM and says why in `WorkerStats.gave_up`, for a supervisor to
start a fresh process.

While the database is away, every loop backs off together and one line is logged
per interval (`DatabaseHealth`); after `give_up_after` without it, the worker
gives up the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import signal
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from wfc.plan import DEFAULT_QUEUE
from wfc.runtime.commands import RunClaimPending
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts.flusher import OutboxFlusher
from wfc.runtime.hosts.health import DatabaseHealth
from wfc.runtime.hosts.schedules import ScheduleTimer
from wfc.runtime.hosts.steps import (
    HEARTBEAT_INTERVAL,
    MaintenanceSettings,
    TickResult,
    maintenance_tick,
    poll_suspended,
    process_job,
)
from wfc.runtime.hosts.threads import StageThreads
from wfc.runtime.kernel import Kernel
from wfc.runtime.ports import JobTransport, Listening, Wakeups
from wfc.runtime.records import JobRecord
from wfc.runtime.schedule_store import ScheduleStore

log = logging.getLogger("wfc.worker")

LISTEN_RETRY = timedelta(seconds=5)
LISTEN_HANDOVER = 5.0  # seconds a stopping worker gives its listener to hand the lead over
MAX_ABANDONED_THREADS = 4
SPARE_THREADS = 4  # beyond slots and abandoned threads: asyncio's DNS lookups use the pool too


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStats:
    """What a worker has done since it started."""

    worker_id: str
    jobs_processed: int
    jobs_succeeded: int
    jobs_failed: int
    orchestration_ticks: int
    running: bool
    in_flight: int
    uptime_s: float
    abandoned_threads: int = 0  # stage threads still running after their job was given up on
    gave_up: str | None = None  # why the worker stopped itself; a supervisor should restart it


class _Signal:
    """An edge-triggered wakeup: `wait` returns once `fire` is called after `arm`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def arm(self) -> asyncio.Event:
        """The event the next `fire` sets; take it before looking for work, wait on it after."""
        return self._event

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


async def _first_of(*waits: Awaitable[Any]) -> None:
    """Return when the first of `waits` does; the others are cancelled."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _wait(event: asyncio.Event, timeout: timedelta) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout.total_seconds())


class WorkerHost:
    """A worker process's loops over one kernel; `serve()` runs it until a signal stops it."""

    def __init__(
        self,
        kernel: Kernel,
        job_transport: JobTransport | None = None,
        *,
        worker_id: str = "worker",
        concurrency: int = 1,
        orchestration_interval: timedelta = timedelta(seconds=10),
        job_poll_interval: timedelta = timedelta(seconds=1),
        stale_lease_threshold: timedelta = timedelta(minutes=5),
        max_claims_per_tick: int = 10,
        max_suspended_checks_per_tick: int = 10,
        max_outbox_flush_per_tick: int = 100,
        heartbeat_interval: timedelta = HEARTBEAT_INTERVAL,
        shutdown_grace: timedelta = timedelta(seconds=30),
        wakeups: Wakeups | None = None,
        max_abandoned_threads: int = MAX_ABANDONED_THREADS,
        give_up_after: timedelta | None = None,
        database_file: Path | None = None,
        run_id: str | None = None,
        retain: timedelta | None = None,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        schedules: ScheduleStore | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_abandoned_threads < 0:
            raise ValueError("max_abandoned_threads must be at least 0")
        self.kernel = kernel
        self.jobs = job_transport or kernel.deps.jobs
        self.worker_id = worker_id
        self.concurrency = concurrency
        self.queues = tuple(queues)  # the queues whose jobs it takes (`--queue`)
        # Whether any stage it serves is under a fleet limit: if none is, a dequeue need not
        # look for limited jobs (a statement saved on every poll).
        self._serves_limits = any(
            stage.concurrency is not None or stage.rate is not None
            for workflow in kernel.deps.registry.workflows()
            for stage in workflow.plan.stages
        )
        self.orchestration_interval = orchestration_interval
        self.job_poll_interval = job_poll_interval
        self.heartbeat_interval = heartbeat_interval
        self.shutdown_grace = shutdown_grace
        self.settings = MaintenanceSettings(
            worker_id=worker_id,
            max_claims=max_claims_per_tick,
            max_suspended_checks=max_suspended_checks_per_tick,
            # The flusher delivers events as they commit (`wfc.runtime.hosts.flusher`): a
            # second flush in the tick could deliver a run's events out of order.
            max_outbox_flush=0,
            stale_lease_threshold=stale_lease_threshold,
            run_id=run_id,
            # Alive for three ticks: a tick late or failed does not make it look gone.
            presence_ttl=max(3 * orchestration_interval, timedelta(seconds=30)),
            retain=retain,
            queues=self.queues,
        )
        self._wakeups = wakeups
        self.max_abandoned_threads = max_abandoned_threads
        self.run_id = run_id  # serve this run only (`wfc run`); None: every run
        self._threads: StageThreads | None = None
        self._gave_up: str | None = None
        self._give_up = asyncio.Event()
        self._health = DatabaseHealth(
            give_up_after=give_up_after, on_give_up=self.give_up, database_file=database_file
        )
        self._backoff_until = 0.0  # while the database is away: the orchestrator's next try
        self._job_signal = _Signal()
        self._claim_signal = _Signal()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._leasing: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._jobs_running: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._in_flight: dict[str, JobRecord] = {}
        self._abandoned: list[JobRecord] = []  # leased here, to hand back as the worker stops
        self._handed: list[JobRecord] = []
        self._next: dict[asyncio.Task[Any], JobRecord] = {}  # a slot's own next job
        self._taken = 0  # jobs handed to this worker so far
        self._maybe_queued = True  # whether a dequeue may find something
        self._claims_waiting = False  # runs may be PENDING that full slots left unclaimed
        self._listening: Listening | None = None
        self._flusher: OutboxFlusher | None = None
        self._claim_now = False  # claim whether or not this worker leads claims (a poll)
        self._runs_waiting = False  # runs may wait: claim them if the lead is ours (or free)
        self._next_poll: float | None = None
        self._next_due: list[float] = []  # when jobs queued here to wait fall due (a heap)
        # Fire the schedules of the served workflows (not when serving one run: `wfc run`).
        self._schedules = None if schedules is None or run_id else ScheduleTimer(kernel, schedules)
        self._running = False
        self._started_at = 0.0
        self._processed = self._succeeded = self._failed = self._ticks = 0

    # -- lifecycle ----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the loops and return; the first maintenance tick runs at once."""
        if self._running:
            return
        self._running = True
        self._started_at = time.monotonic()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._gave_up = None
        self._give_up = asyncio.Event()
        self._install_threads()
        self._leasing = asyncio.create_task(self._lease_loop(), name=f"{self.worker_id}:lease")
        self._flusher = OutboxFlusher(self.kernel, self._stopping)
        self._background = [
            asyncio.create_task(self._orchestrate(), name=f"{self.worker_id}:orchestrator"),
            asyncio.create_task(self._flusher.run(), name=f"{self.worker_id}:flusher"),
        ]
        if self._wakeups is not None:
            self._listener = asyncio.create_task(
                self._listen(self._wakeups), name=f"{self.worker_id}:listen"
            )
            self._background.append(self._listener)
        log.info(
            "worker started",
            extra={"worker_id": self.worker_id, "concurrency": self.concurrency},
        )

    async def stop(self, grace: timedelta | None = None) -> None:
        """Stop leasing; wait up to `grace` for in-flight jobs, then release what is left."""
        if not self._running:
            return
        self._stopping.set()
        self._job_signal.fire()
        self._claim_signal.fire()
        grace = self.shutdown_grace if grace is None else grace
        if self._leasing is not None:
            await asyncio.gather(self._leasing, return_exceptions=True)
        if self._listener is not None:  # it hands the claim lead over as it leaves: let it
            await asyncio.wait([self._listener], timeout=LISTEN_HANDOVER)
        in_flight = list(self._jobs_running)
        slots_done = asyncio.ensure_future(asyncio.gather(*in_flight, return_exceptions=True))
        hurried = asyncio.ensure_future(self._hurry.wait())
        either: list[asyncio.Future[Any]] = [slots_done, hurried]
        await asyncio.wait(
            either,
            timeout=grace.total_seconds(),
            return_when=asyncio.FIRST_COMPLETED,
        )
        hurried.cancel()
        for task in [*in_flight, *self._background]:
            task.cancel()
        await asyncio.gather(slots_done, *self._background, return_exceptions=True)
        self._abandoned += self._handed  # leased to us, never started
        self._handed.clear()
        for job in self._abandoned:
            try:
                await self.jobs.release(job.id, attempt=job.attempt)
                log.info("released job %s for another worker", job.id, extra={"job_id": job.id})
            except Exception:
                log.exception(
                    "could not release job %s; it is reaped when its lease expires", job.id
                )
        self._abandoned.clear()
        if self.run_id is None:
            try:  # gone now, not when its announcement expires
                await self.kernel.deps.persistence.retire_worker(self.worker_id)
            except Exception:
                log.warning("could not retire worker %s; its announcement expires", self.worker_id)
        self._running = False
        log.info("worker stopped", extra={"worker_id": self.worker_id})

    async def serve(self) -> WorkerStats:
        """Run until SIGTERM or SIGINT (a second one cuts the grace period short)."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()

        def on_signal() -> None:
            if stop_requested.is_set():
                self._hurry.set()
            stop_requested.set()

        installed = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal)
                installed.append(signum)
        try:
            await self.start()
            await _first_of(stop_requested.wait(), self._give_up.wait())
            log.info("stopping: finishing in-flight jobs", extra={"worker_id": self.worker_id})
            await self.stop()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            await self.stop(grace=timedelta(0))
        return self.stats()

    def stats(self) -> WorkerStats:
        return WorkerStats(
            worker_id=self.worker_id,
            jobs_processed=self._processed,
            jobs_succeeded=self._succeeded,
            jobs_failed=self._failed,
            orchestration_ticks=self._ticks,
            running=self._running,
            in_flight=len(self._in_flight),
            uptime_s=time.monotonic() - self._started_at if self._running else 0.0,
            abandoned_threads=self._threads.abandoned if self._threads is not None else 0,
            gave_up=self._gave_up,
        )

    # -- health ---------------------------------------------------------------
    def _install_threads(self) -> None:
        """Run `def` stages in a pool of this worker's own, with room for its slots and the
        threads it may abandon, that counts those threads (see `StageThreads`)."""
        loop = asyncio.get_running_loop()

        def changed(count: int) -> None:  # called on the stage's thread when it returns
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
                loop.call_soon_threadsafe(self._abandoned_threads_changed, count)

        self._threads = StageThreads(
            self.concurrency + self.max_abandoned_threads + SPARE_THREADS, on_change=changed
        )
        loop.set_default_executor(self._threads)

    def _abandoned_threads_changed(self, count: int) -> None:
        extra = {"worker_id": self.worker_id, "abandoned_threads": count}
        if count == 0:
            log.info("every abandoned stage thread has returned", extra=extra)
            return
        log.log(
            logging.INFO if self._stopping.is_set() else logging.WARNING,  # stopping: expected
            "worker holds %d abandoned stage thread(s) (stages that timed out or whose run "
            "ended, still running; limit %d)",
            count,
            self.max_abandoned_threads,
            extra=extra,
        )
        if count > self.max_abandoned_threads:
            self.give_up(
                f"{count} stage threads never returned after their stage timed out or its run "
                f"ended (more than --max-abandoned-threads {self.max_abandoned_threads}); "
                "restart the worker to get them back"
            )

    def give_up(self, reason: str) -> None:
        """Stop leasing and claiming now, and have `serve()` stop and return `reason` in
        `WorkerStats.gave_up`: the process is unhealthy and should be replaced."""
        if self._gave_up is not None:
            return
        self._gave_up = reason
        log.error("giving up: %s", reason, extra={"worker_id": self.worker_id})
        self._give_up.set()
        self._job_signal.fire()
        self._claim_signal.fire()

    # -- jobs this worker queues itself (wfc.runtime.handoff) -------------------
    def _finishing_slot(self) -> asyncio.Task[Any] | None:
        """The job slot calling, if it has no next job of its own yet."""
        task = asyncio.current_task()
        if task is not None and task in self._jobs_running and task not in self._next:
            return task
        return None

    def free_slots(self) -> int:
        """Slots for jobs this worker queues itself; a finishing job's own slot counts."""
        if self._stopping.is_set() or self._gave_up is not None:
            return 0
        own = 1 if self._finishing_slot() is not None else 0
        return self.concurrency - len(self._jobs_running) - len(self._handed) + own

    def serves(self, queue: str) -> bool:
        """Whether this worker takes jobs of `queue` (`--queue`)."""
        return queue in self.queues

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        """Start these jobs (leased to this worker) as slots free up; a finishing slot
        keeps the first for itself, to run next on its pinned connection."""
        self._taken += len(jobs)
        rest = list(jobs)
        slot = self._finishing_slot()
        if slot is not None and rest:
            self._next[slot] = rest.pop(0)
        self._handed.extend(rest)
        if more_queued:
            self._maybe_queued = True
        if rest or more_queued:
            self._job_signal.fire()

    # -- wakeups ------------------------------------------------------------
    def wake_jobs(self) -> None:
        """Jobs may be due now: idle slots look at once."""
        self._maybe_queued = True
        self._job_signal.fire()

    def job_due_at(self, when: datetime) -> None:
        """A job queued here falls due then (a sleep's or a signal timeout's timer,
        `wfc.runtime.handoff.due_later`): look for it at that moment, not at the next poll."""
        delay = (when - self.kernel.deps.clock.now()).total_seconds()
        # A few ms late: a dequeue a hair early would find it not yet due and wait a poll.
        heapq.heappush(self._next_due, time.monotonic() + max(0.0, delay) + 0.005)
        self._job_signal.fire()

    def _until_due(self) -> timedelta:
        """How long the lease loop may wait for a wakeup: a poll interval, or less when a
        job it knows of falls due sooner (then it looks when that wait ends)."""
        now = time.monotonic()
        while self._next_due and self._next_due[0] <= now:
            heapq.heappop(self._next_due)
            self._maybe_queued = True
        if not self._next_due:
            return self.job_poll_interval
        return min(self.job_poll_interval, timedelta(seconds=self._next_due[0] - now))

    def wake_claims(self) -> None:
        """A run may be pending: the orchestrator claims at once."""
        self._claim_now = True
        self._claim_signal.fire()

    def _on_wake(self, what: str) -> None:
        if what == "jobs":
            self.wake_jobs()
        elif what == "runs-waiting" or (what == "runs" and self._leads_claims()):
            self._wake_claims_if_lead()  # the others leave a created run to the lead

    def _wake_claims_if_lead(self) -> None:
        """Runs may wait: claim them if this worker leads claims, or can take the lead."""
        self._runs_waiting = True
        self._claim_signal.fire()

    def _leads_claims(self) -> bool:
        """Whether this worker is the one that claims runs as they are created; without a
        LISTEN connection, no worker is told of them, so each one claims as it polls."""
        return self._listening is None or self._listening.leading

    async def _listen(self, wakeups: Wakeups) -> None:
        while not self._stopping.is_set():
            try:
                async with wakeups.listen(self._on_wake) as listening:
                    self._listening = listening
                    self._wake_claims_if_lead()  # take the claim lead now if nobody holds it
                    try:
                        await _first_of(self._stopping.wait(), listening.until_lost())
                    finally:
                        self._listening = None
                if self._stopping.is_set():
                    return
                log.warning("the LISTEN connection was lost; polling until it is back")
            except Exception as error:
                delay = self._health.failed("listen", error)
                await _wait(self._stopping, max(LISTEN_RETRY, timedelta(seconds=delay)))
                continue
            await _wait(self._stopping, LISTEN_RETRY)

    # -- loops --------------------------------------------------------------
    def _poll_due_at(self, when: datetime) -> None:
        """A suspended stage is due then: poll at that moment, not up to an orchestration
        interval later."""
        delay = (when - self.kernel.deps.clock.now()).total_seconds()
        due = time.monotonic() + max(0.0, delay)
        if self._next_poll is None or due < self._next_poll:
            self._next_poll = due
            self._claim_signal.fire()

    async def _orchestrate(self) -> None:
        # One connection for all its claims and ticks (a checkout cycle costs about as much
        # as a statement; a busy worker claims once per run).
        async with self.kernel.deps.pinning.pinned():
            await self._orchestrate_pinned()

    async def _orchestrate_pinned(self) -> None:
        next_tick = 0.0
        while not self._stopping.is_set():
            woken = self._claim_signal.arm()
            gone = self._health.check_file()
            if gone is not None:  # nothing written now would ever be read
                delay = self._health.failed("database file", gone)
                await _wait(self._stopping, timedelta(seconds=delay))
                continue
            if self._next_poll is not None and time.monotonic() >= self._next_poll:
                self._next_poll = None
                await self._poll_now()
                continue
            if self._schedules is not None and self._schedules.is_due():
                await self._fire_schedules(self._schedules)
                continue
            if time.monotonic() >= next_tick:
                self._ticks += 1
                room = self._claim_room()
                self._claim_now = False  # the tick claims: a wakeup during it claims again
                with self._handing_off_to_self(in_tick=True):
                    tick = await maintenance_tick(
                        self.kernel, replace(self.settings, max_claims=room), quiet=True
                    )
                next_tick = time.monotonic() + self.orchestration_interval.total_seconds()
                if tick.failure is not None:
                    self._backed_off(f"maintenance ({', '.join(tick.errors)})", tick.failure)
                    next_tick = max(next_tick, self._backoff_until)
                else:
                    self._health.ok()
                self._poll_again(tick)
                more = self._settle_claim(tick.claimed, room)
                # A tick claims whoever leads, and so does the claim after it when the tick
                # reached its limit.
                self._claim_now = self._claim_now or more
                if self._claims_waiting:
                    await self._pass_on_claims()
                if tick.claimed or tick.suspended_checked or tick.stale_released:
                    self.wake_jobs()
                if self._schedules is not None:  # the fallback: schedules added elsewhere
                    self._schedules.wake()
            else:
                more = await self._guarded(self._claim_if_due(), "claim")
            if more:
                continue
            wake_at = min(next_tick, self._next_poll or next_tick)
            if self._schedules is not None:
                wake_at = min(wake_at, self._schedules.due_at() or wake_at)
            if self._listening is None or not self._listening.leading:
                # Nothing tells this worker about runs created elsewhere: look for them as
                # often as for jobs, so a new run does not wait for the full tick (and a
                # lead that died is replaced as soon).
                wake_at = min(wake_at, time.monotonic() + self.job_poll_interval.total_seconds())
            if self._health.down:
                wake_at = max(wake_at, self._backoff_until)
            wait = max(0.0, wake_at - time.monotonic())
            await _wait(woken, timedelta(seconds=wait))
            if not woken.is_set():
                self._claim_now = True  # a poll: look whatever the wakeups said

    async def _poll_now(self) -> None:
        """A suspended stage is due: check the due stages now, not the rest of a tick."""
        with self._handing_off_to_self(in_tick=True):
            polled = await poll_suspended(
                self.kernel, self.settings.max_suspended_checks, run_id=self.run_id, quiet=True
            )
        if polled.failure is not None:
            self._backed_off("poll", polled.failure)
        else:
            self._health.ok()
        self._poll_again(polled)
        if polled.suspended_checked:
            self.wake_jobs()

    async def _fire_schedules(self, timer: ScheduleTimer) -> None:
        """Fire the due ticks of the schedules this worker serves, and claim their runs now."""
        try:
            fired = await timer.run()
        except Exception as error:
            self._backed_off("schedules", error)
            timer.retry_at(max(self._backoff_until, time.monotonic() + 1.0))
            return
        self._health.ok()
        if fired.started:
            self.wake_claims()

    def _poll_again(self, polled: TickResult) -> None:
        """Poll when the stages just checked are next due (the `poll every` they declare),
        and at once when the poll reached its limit (more may be due)."""
        if polled.suspended_checked >= self.settings.max_suspended_checks:
            self._poll_due_at(self.kernel.deps.clock.now())
        elif polled.next_poll_at is not None:
            self._poll_due_at(polled.next_poll_at)

    def _handing_off_to_self(
        self, *, in_tick: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        """Jobs queued here go to this worker's free slots (`wfc.runtime.handoff`); not in a
        tick or poll of a worker that serves one run: those move other runs on too."""
        if in_tick and self.run_id is not None:
            return contextlib.nullcontext()
        return handing_off_to(self)

    def _claim_room(self) -> int:
        """How many runs to claim now: no more than there are slots to start them in."""
        return max(0, min(self.settings.max_claims, self.free_slots()))

    def _settle_claim(self, claimed: int, room: int) -> bool:
        """After claiming `claimed` of at most `room` runs, decide what claims next: True to
        claim again at once (the per-claim limit was reached); when the slots are what ran
        out, it sets `_claims_waiting`, so the next slot to free up claims (`_job_finished`)."""
        if claimed < room:
            return False
        if room < self.settings.max_claims:
            self._claims_waiting = True
            return False
        return True

    async def _claim_if_due(self) -> bool:
        """Claim if this worker leads claims (a worker with room takes the lead when nobody
        holds it), or on a poll; runs left to a lead that another worker holds are its."""
        waiting, self._runs_waiting = self._runs_waiting, False
        now, self._claim_now = self._claim_now, False
        listening = self._listening
        if (waiting or now) and listening is not None and not listening.leading:
            if self._claim_room() == 0:
                self._claims_waiting = True  # the next slot to free up looks again
                return False
            await listening.lead_claims()
        if not (now or (waiting and self._leads_claims())):
            return False
        more = await self._claim()
        if more:  # the per-claim limit was reached: claim again at once, for the same reason
            self._claim_now, self._runs_waiting = now, waiting
        return more

    async def _claim(self) -> bool:
        """Claim pending runs now, as many as there are free slots; True when the per-claim
        limit was reached (more may wait)."""
        room = self._claim_room()
        if room == 0:
            self._claims_waiting = True
            await self._pass_on_claims()
            return False
        taken = self._taken
        with handing_off_to(self):
            result = await self.kernel.dispatch(
                RunClaimPending(
                    worker_id=self.worker_id, max_claims=room, workflow_run_id=self.run_id
                )
            )
        self._health.ok()  # (only a call that reached the database says it is back)
        queued = sum(len(claimed.job_ids) for claimed in result.claimed)
        if queued > self._taken - taken:  # some were not handed here: look for them
            self.wake_jobs()
        more = self._settle_claim(len(result.claimed), room)
        if self._claims_waiting:
            await self._pass_on_claims()
        return more

    async def _pass_on_claims(self) -> None:
        """Out of room as the claim lead: hand the lead to a worker with room. (Best effort:
        were it lost, the others poll, and take the lead when they do.)"""
        listening = self._listening
        if listening is not None:
            try:
                await listening.pass_on_claims()
            except Exception:
                log.warning("could not pass the claim lead on", exc_info=True)

    async def _guarded(self, step: Awaitable[bool], name: str) -> bool:
        try:
            return await step
        except Exception as error:
            self._backed_off(name, error)
            return False

    def _backed_off(self, name: str, error: BaseException) -> None:
        """The orchestrator's call failed: it waits as `DatabaseHealth` says (logged there)."""
        delay = self._health.failed(name, error)
        self._backoff_until = time.monotonic() + delay

    async def _lease_loop(self) -> None:
        """Lease as many jobs as there are free slots, in one query, and start each.

        One loop per worker (not one per slot) so a wakeup costs one dequeue,
        however many slots are idle. Jobs this worker queued for itself start
        without one; a dequeue runs only when something may be queued (a
        wakeup, a full previous dequeue, jobs queued beyond the free slots) or
        when `job_poll_interval` passes without a wakeup.
        """
        while not self._stopping.is_set():
            woken = self._job_signal.arm()
            free = self.concurrency - len(self._jobs_running)
            if self._gave_up is not None:  # lease nothing more; serve() is stopping
                await _wait(self._stopping, timedelta(days=1))
                continue
            if free <= 0:
                await _wait(woken, self.job_poll_interval)
                continue
            if self._handed:
                handed, self._handed = self._handed[:free], self._handed[free:]
                for job in handed:
                    self._start_job(job)
                continue
            wait = self._until_due()
            if not self._maybe_queued:
                await _wait(woken, wait)
                if not woken.is_set():  # a poll: look whatever the wakeups said
                    self._maybe_queued = True
                continue
            self._maybe_queued = False
            try:
                gone = self._health.check_file()
                if gone is not None:  # lease nothing from a file nobody else will see
                    raise gone
                # Only jobs of the plans this worker serves: others wait for their workers.
                plans = self.kernel.deps.registry.plans()
                leased = await self.jobs.dequeue(
                    free,
                    run_id=self.run_id,
                    plans=plans,
                    queues=self.queues,
                    limited=self._serves_limits,
                )
            except Exception as error:
                self._maybe_queued = True
                delay = self._health.failed("dequeue", error)
                await _wait(self._stopping, timedelta(seconds=delay))
                continue
            self._health.ok()
            for job in leased:
                self._start_job(job)
            if len(leased) == free:  # there may be more than there were slots
                self._maybe_queued = True

    def _start_job(self, job: JobRecord) -> None:
        task = asyncio.create_task(self._run_slot(job), name=f"slot:{job.id}")
        self._jobs_running.add(task)
        task.add_done_callback(self._job_finished)

    async def _run_slot(self, job: JobRecord) -> None:
        """Run `job`, then each job it handed to this slot, over one pinned connection."""
        slot = asyncio.current_task()
        assert slot is not None
        try:
            async with self.kernel.deps.pinning.pinned():
                next_job: JobRecord | None = job
                while next_job is not None:
                    await self._run_job(next_job)
                    next_job = None if self._stopping.is_set() else self._next.pop(slot, None)
        finally:
            left = self._next.pop(slot, None)
            if left is not None:  # stopping or cancelled: give it back with the rest
                self._abandoned.append(left)

    def _job_finished(self, task: asyncio.Task[None]) -> None:
        self._jobs_running.discard(task)
        self._job_signal.fire()
        if self._claims_waiting and self.free_slots() > 0:
            self._claims_waiting = False
            self.wake_claims()  # runs were left for want of room: claim, lead or not

    async def _run_job(self, job: JobRecord) -> None:
        self._in_flight[job.id] = job
        started = time.monotonic()
        try:
            with handing_off_to(self):
                outcome = await process_job(
                    self.kernel, job, heartbeat_every=self.heartbeat_interval, watch_run=True
                )
        except asyncio.CancelledError:
            self._abandoned.append(job)
            raise
        except Exception:
            # The job stays RUNNING; the stale-lease reaper gives it to a worker later.
            log.exception("job %s raised; its lease will be reaped", job.id)
            return
        finally:
            self._in_flight.pop(job.id, None)
            if job.limits is not None:
                # Its limit has a free slot now, and jobs may wait for it that no wakeup
                # announces: look at once rather than at the next poll.
                self._maybe_queued = True
        self._processed += 1
        if self._flusher is not None:
            self._flusher.wake()  # the job's commit appended its events
        if outcome.retried:  # due again soon, perhaps at once: look for it
            self._maybe_queued = True
        if outcome.outcome == "failed":
            self._failed += 1
        else:
            self._succeeded += 1
        if outcome.next_poll_at is not None:
            self._poll_due_at(outcome.next_poll_at)
        if not log.isEnabledFor(logging.INFO):  # (its fields cost more than the call)
            return
        log.info(
            "job %s",
            outcome.outcome,
            extra={
                "worker_id": self.worker_id,
                "job_id": job.id,
                "run_id": job.run_id,
                "stage_id": job.stage_id,
                "attempt": job.attempt,
                "outcome": outcome.outcome,
                "retried": outcome.retried,
                "error": outcome.error,
                "duration_ms": round((time.monotonic() - started) * 1000, 2),
            },
        )
