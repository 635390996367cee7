"""`WorkerHost`: the long-running worker (spec §9.2), with wakeups instead of waiting on polls.

This module is the worker's lifecycle (`start`, `stop`, `serve`, giving up)
and the face it shows the kernel and its orchestrator: how many slots are
free, the jobs and runs handed to it (`wfc.runtime.handoff`'s
`NextRunTaker`), and the wakeups. It composes the parts that do the work:

- `JobSlots` (`wfc.runtime.hosts.job_slots`): `concurrency` job slots, each
  leasing one job at a time, executing it with a heartbeat, and settling it; a
  slot that finishes a stage runs the first job of the next group itself, on
  the same pinned connection, and the rest wait there for a free slot;
- `LeaseLoop` (`wfc.runtime.hosts.lease_loop`): when idle slots ask the queue
  for jobs, with `job_poll_interval` as the fallback to the wakeups;
- `Orchestrator` (`wfc.runtime.hosts.orchestrator`): what claims runs and keeps
  the database tidy, sharing one kernel with the slots and seeing of them only
  how many are free;
- `OutboxFlusher` (`wfc.runtime.hosts.flusher`), and the stage threads
  (`wfc.runtime.hosts.threads`).

With `run_id`, the worker serves that run alone (what `wfc run` does): it claims
and leases nothing else, and its ticks hand it no other run's jobs. Runs created in
its process while it has a free slot start in their create (`Kernel.offer_slots`).

`stop()` (or SIGTERM/SIGINT under `serve()`, `stop_signals`) stops leasing and
claiming, lets in-flight jobs finish for `shutdown_grace`, then cancels the rest
and releases their jobs back to PENDING so another worker takes them; no job is
left RUNNING.

Plain `def` stages run in the worker's own thread pool
(`wfc.runtime.hosts.threads`): a stage that times out, or whose run ends under
it, frees its slot at once, but Python cannot stop its thread. A worker holding
more than `max_abandoned_threads` such threads stops leasing, stops as on
SIGTERM and says why in `WorkerStats.gave_up`, for a supervisor to start a
fresh process.

While the database is away, every loop backs off together and one line is logged
per interval (`DatabaseHealth`); after `give_up_after` without it, the worker
gives up the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from wfc.plan import DEFAULT_QUEUE
from wfc.runtime.hosts.flusher import OutboxFlusher
from wfc.runtime.hosts.give_back import GiveBack
from wfc.runtime.hosts.health import DatabaseHealth
from wfc.runtime.hosts.job_slots import JobSlots
from wfc.runtime.hosts.lease_loop import LeaseLoop
from wfc.runtime.hosts.orchestrator import Orchestrator
from wfc.runtime.hosts.schedules import ScheduleTimer
from wfc.runtime.hosts.steps import HEARTBEAT_INTERVAL, MaintenanceSettings
from wfc.runtime.hosts.stop_signals import stop_signals
from wfc.runtime.hosts.threads import MAX_ABANDONED_THREADS, StageThreads, install_stage_threads
from wfc.runtime.hosts.waiting import Signal, first_of
from wfc.runtime.hosts.worker_stats import WorkerStats
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel
from wfc.runtime.ports import JobTransport, Wakeups
from wfc.runtime.schedule_store import ScheduleStore

log = logging.getLogger("wfc.worker")

LISTEN_HANDOVER = 5.0  # seconds a stopping worker gives its listener to hand the lead over
FLUSH_HANDOVER = 5.0  # seconds a stopping worker gives a delivery under way to finish


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
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._leasing: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._give_back = GiveBack(self.jobs)  # leased here, to hand back as the worker stops
        self.jobs_taken = 0  # jobs handed to this worker so far (`take`)
        self._flusher: OutboxFlusher | None = None
        self._lease_loop = LeaseLoop(
            kernel,
            self.jobs,
            run_id=run_id,
            queues=self.queues,
            job_poll_interval=job_poll_interval,
            health=self._health,
        )
        # Fire the schedules of the served workflows (not when serving one run: `wfc run`).
        self.orchestrator = Orchestrator(
            kernel,
            self,
            settings=self.settings,
            health=self._health,
            orchestration_interval=orchestration_interval,
            job_poll_interval=job_poll_interval,
            schedules=None if schedules is None or run_id else ScheduleTimer(kernel, schedules),
        )
        self._slots = JobSlots(
            kernel,
            taker=self,
            worker_id=worker_id,
            concurrency=concurrency,
            heartbeat_interval=heartbeat_interval,
            leasing=self._lease_loop,
            orchestrator=self.orchestrator,
            give_back=self._give_back,
        )
        self._running = False
        self._started_at = 0.0

    # -- lifecycle ----------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the loops and return; the first maintenance tick runs at once (a one-run
        host woken by `wake_claims` claims its run first and ticks an interval later)."""
        if self._running:
            return
        self._running = True
        self._started_at = time.monotonic()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._gave_up = None
        self._give_back.reopen()
        self._give_up = asyncio.Event()
        self._threads = install_stage_threads(
            worker_id=self.worker_id,
            slots=self.concurrency,
            max_abandoned=self.max_abandoned_threads,
            stopping=lambda: self._stopping.is_set(),
            give_up=self.give_up,
        )
        self._flusher = OutboxFlusher(self.kernel, self._stopping, one_run=self.run_id is not None)
        self._slots.open(self._stopping, self._flusher)
        self._leasing = asyncio.create_task(
            self._lease_loop.run(self._slots, self._stopping, self._give_up),
            name=f"{self.worker_id}:lease",
        )
        self._background = [
            asyncio.create_task(
                self.orchestrator.run(self._stopping), name=f"{self.worker_id}:orchestrator"
            ),
        ]
        self._flushing = asyncio.create_task(self._flusher.run(), name=f"{self.worker_id}:flusher")
        if self._wakeups is not None:
            self._listener = asyncio.create_task(
                self.orchestrator.listen(self._wakeups, self._stopping),
                name=f"{self.worker_id}:listen",
            )
            self._background.append(self._listener)
        self.kernel.offer_slots(self)  # runs created here start in their create
        self.kernel.deps.run_end_listeners.append(self._slots.run_ended)
        log.info(
            "worker started",
            extra={"worker_id": self.worker_id, "concurrency": self.concurrency},
        )

    async def stop(self, grace: timedelta | None = None) -> None:
        """Stop leasing; wait up to `grace` for in-flight jobs, then release what is left."""
        if not self._running:
            return
        try:
            await self._wind_down(grace)
        finally:  # after its last jobs; and on a cancelled stop, which must not leave it
            # registered with the kernel (holding the host) for a next stop to remove
            if self._slots.run_ended in self.kernel.deps.run_end_listeners:
                self.kernel.deps.run_end_listeners.remove(self._slots.run_ended)
        self._running = False
        log.info("worker stopped", extra={"worker_id": self.worker_id})

    async def _wind_down(self, grace: timedelta | None) -> None:
        self.kernel.withdraw_slots(self)
        self._stopping.set()
        self._lease_loop.signal.fire()
        self.orchestrator.nudge()
        grace = self.shutdown_grace if grace is None else grace
        if self._leasing is not None:
            await asyncio.gather(self._leasing, return_exceptions=True)
        if self._listener is not None:  # it hands the claim lead over as it leaves: let it
            await asyncio.wait([self._listener], timeout=LISTEN_HANDOVER)
        slots_done = await self._slots.wind_down(grace, self._hurry)
        for task in self._background:
            task.cancel()
        await asyncio.gather(slots_done, *self._background, return_exceptions=True)
        await self._flusher_stopped()
        self._slots.hand_back_unstarted()  # leased to us, never started
        await self._give_back.give_back()  # and what `take` is given from now on, at once
        if self._flusher is not None:
            await self._flusher.last_batch()
        if self.run_id is None:
            try:  # gone now, not when its announcement expires
                await self.kernel.deps.persistence.retire_worker(self.worker_id)
            except Exception:
                log.warning("could not retire worker %s; its announcement expires", self.worker_id)

    async def _flusher_stopped(self) -> None:
        """The flusher ended once the delivery under way, if any, is marked: cancelled in
        the middle, its transaction rolled back and the last batch gave plugins the same
        events again. Past `FLUSH_HANDOVER` (a plugin that hangs), or once told to hurry
        (a second signal), it is cancelled."""
        flushing = self._flushing
        if flushing is None or self._flusher is None:
            return
        hurried = asyncio.ensure_future(self._hurry.wait())
        try:
            self._flusher.wake()  # out of its pause: `stopping` is set, so it ends
            await asyncio.wait(
                [flushing, hurried], timeout=FLUSH_HANDOVER, return_when=asyncio.FIRST_COMPLETED
            )
        finally:  # a cancelled stop too: the task never outlives its host
            hurried.cancel()
            flushing.cancel()
            await asyncio.gather(flushing, hurried, return_exceptions=True)
            self._flushing = None

    async def serve(self) -> WorkerStats:
        """Run until SIGTERM or SIGINT (a second one cuts the grace period short)."""
        try:
            with stop_signals(hurry=lambda: self._hurry.set()) as stop_requested:
                await self.start()
                await first_of(stop_requested.wait(), self._give_up.wait())
                log.info("stopping: finishing in-flight jobs", extra={"worker_id": self.worker_id})
                await self.stop()
        finally:
            await self.stop(grace=timedelta(0))
        return self.stats()

    def stats(self) -> WorkerStats:
        tally = self._slots.tally
        return WorkerStats(
            worker_id=self.worker_id,
            jobs_processed=tally.processed,
            jobs_succeeded=tally.succeeded,
            jobs_failed=tally.failed,
            orchestration_ticks=self.orchestrator.ticks,
            running=self._running,
            in_flight=len(self._slots.in_flight),
            uptime_s=time.monotonic() - self._started_at if self._running else 0.0,
            abandoned_threads=self._threads.abandoned if self._threads is not None else 0,
            gave_up=self._gave_up,
        )

    # -- health ---------------------------------------------------------------
    def give_up(self, reason: str) -> None:
        """Stop leasing and claiming now, and have `serve()` stop and return `reason` in
        `WorkerStats.gave_up`: the process is unhealthy and should be replaced."""
        if self._gave_up is not None:
            return
        self._gave_up = reason
        log.error("giving up: %s", reason, extra={"worker_id": self.worker_id})
        self._give_up.set()
        self._lease_loop.signal.fire()
        self.orchestrator.nudge()

    # -- jobs this worker queues itself (wfc.runtime.handoff) -------------------
    def free_slots(self) -> int:
        """Slots for jobs this worker queues itself; a finishing job's own slot counts."""
        if self._stopping.is_set() or self._gave_up is not None:
            return 0
        slots = self._slots
        own = 1 if slots.finishing_slot() is not None else 0
        return self.concurrency - len(slots.running) - len(slots.handed) + own

    def room_for_a_run(self) -> bool:
        """Whether a run created now may be claimed for this worker (`Kernel.offer_slots`):
        a free slot, and not asked by a busy slot (a stage creating a run), whose next job
        would wait, its lease unrenewed, for that stage to end. Not a worker with
        `wakeups`: a created run wakes the claim lead (PostgreSQL's NOTIFY is sent by the
        insert), whose claim would then find it taken, a transaction for nothing."""
        if self._wakeups is not None or asyncio.current_task() in self._slots.running:
            return False
        return self.free_slots() > 0

    def claimed_at_create(self, run_id: str, *, jobs_waiting: bool, others_pending: bool) -> None:
        """A run created here was claimed for this worker in its create's transaction."""
        self.orchestrator.claimed_at_create(
            run_id, jobs_waiting=jobs_waiting, others_pending=others_pending
        )

    def room_for_next_run(self) -> bool:
        """Whether the calling slot, its run ending with nothing handed to it, may claim the
        next PENDING run in that outcome's transaction (`handoff.NextRunTaker`): only when
        runs were left PENDING for want of room (a burst), never while stopping or giving
        up, and not when serving one run (`wfc run`: claimed already)."""
        if self.run_id is not None or self._stopping.is_set() or self._gave_up is not None:
            return False
        return (
            self.orchestrator.claims_waiting
            and self._slots.finishing_slot() is not None
            and self.free_slots() > 0  # not promised to a job handed already (a wide group)
        )

    def claimed_at_outcome(
        self, run_id: str | None, *, jobs_waiting: bool, others_pending: bool
    ) -> None:
        """An outcome's transaction claimed for this worker (`room_for_next_run`)."""
        self.orchestrator.claimed_at_outcome(
            run_id, jobs_waiting=jobs_waiting, others_pending=others_pending
        )

    def serves(self, queue: str) -> bool:
        """Whether this worker takes jobs of `queue` (`--queue`)."""
        return queue in self.queues

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        """Start these jobs (leased to this worker) as slots free up; a finishing slot
        keeps the first for itself, to run next on its pinned connection. Once the worker
        is handing back what it holds (`stop`), they go back at once: a create or an
        outcome that chose this worker before it stopped may commit after."""
        if self._give_back.closed:
            self._give_back.late(jobs)
            return
        self.jobs_taken += len(jobs)
        waiting = self._slots.hold(list(jobs))
        leasing = self._lease_loop
        if more_queued:
            leasing.maybe_queued = True
        if waiting or more_queued:
            leasing.signal.fire()

    # -- wakeups ------------------------------------------------------------
    def wake_jobs(self) -> None:
        """Jobs may be due now: idle slots look at once."""
        self._lease_loop.wake()

    def job_due_at(self, when: datetime) -> None:
        """A job queued here falls due then (`DueJobs`): look for it at that moment."""
        self._lease_loop.due_in((when - self.kernel.deps.clock.now()).total_seconds())

    def before_its_run_exists(self) -> None:
        """This one-run host starts before its run is created (`run_and_wait`): the create
        hands it the first job, so its first dequeue would find nothing."""
        self._lease_loop.nothing_queued_yet()

    def wake_claims(self) -> None:
        """A run may be pending: the orchestrator claims at once."""
        self.orchestrator.wake_claims()

    def run_end_signal(self, run_id: str) -> Signal:
        """Fired when a transaction of this worker's kernel ended run `run_id` (its last
        stage, a child run's end, a poll, a signal, a cancel, each made through that
        kernel), so that whoever waits for the run here looks at once rather than at its
        next poll. A run ended elsewhere (another process, another kernel) is seen at that
        poll. The worker keeps
        the signal only while someone holds it: hold it for as long as you wait, arm it
        before each look at the run and wait on the event after (`Signal.arm`)."""
        signal = self._slots.run_ends.get(run_id)
        if signal is None:
            signal = self._slots.run_ends[run_id] = Signal()
        return signal
