"""`Orchestrator`: a worker's claims of new runs and its maintenance, apart from its job slots.

A worker claims only as many runs as it has free slots, so every run it claims
starts at once (its first stage handed to it), and runs it cannot start now
stay PENDING for a worker that can: no run waits behind a busy worker's full
slots, and no job is queued PENDING only to wake every worker into a race for
it. A slot that frees up while runs wait wakes the orchestrator to claim again
(`slot_freed`).

A created run wakes every worker listening, but only one of them, the claim
lead, claims it (`wfc.runtime.ports.Listening`): were all to claim, all but one
would spend a transaction finding nothing, for every run. The lead that runs
out of room passes the lead, and the runs, on to a worker with room; one that
stops hands it over as it goes; one that dies lets go of it with its
connection, and the others, which poll every `job_poll_interval`, take it.

Every `orchestration_interval` it runs the full maintenance tick (claim, poll
suspended stages, reap stale leases, reap stuck runs). Suspended stages are
checked when they are due (the time a stage's suspension or its last check
gave, its `poll every`), not only on the tick, and due schedules fire as they
fall due. Without a wakeup source (SQLite), it also claims new runs every
`job_poll_interval`. A host serving one run (`wfc run`) has that run claimed before
its first tick, an interval after it starts, with the first stage handed to a slot:
usually by the run's create (`Kernel.offer_slots`, `claimed_at_create`), else by
its own claim; once it has the run it claims nothing more but in its ticks. A run
created in this process while the worker has a free slot is claimed by its create
for this worker too (not for a worker with `wakeups`: the fleet's claim lead has it).

It is its own object, holding its own state, so that the worker
(`wfc.runtime.hosts.worker`, its slots in `job_slots`) and it share only the
narrow `SlotsHost`: how many slots are free, jobs handed over, and a wakeup for
idle slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from wfc.runtime.commands import RunClaimPending
from wfc.runtime.handoff import JobTaker, handing_off_to
from wfc.runtime.hosts.health import DatabaseHealth
from wfc.runtime.hosts.schedules import ScheduleTimer
from wfc.runtime.hosts.steps import (
    MaintenanceSettings,
    TickResult,
    maintenance_tick,
    poll_suspended,
)
from wfc.runtime.hosts.waiting import Signal, first_of, wait_at_most
from wfc.runtime.kernel import Kernel
from wfc.runtime.ports import Listening, Wakeups

log = logging.getLogger("wfc.worker")

LISTEN_RETRY = timedelta(seconds=5)


class SlotsHost(JobTaker, Protocol):
    """What the orchestrator needs of the worker whose slots its claims fill."""

    concurrency: int  # its job slots

    @property
    def jobs_taken(self) -> int:
        """How many jobs were handed to the worker so far (`take`)."""
        ...

    def wake_jobs(self) -> None:
        """Jobs may be due now: idle slots look at once."""
        ...


class Orchestrator:
    """The claims, maintenance ticks, suspended-stage polls, schedules and LISTEN wakeups
    of one worker; `run` and `listen` are its two loops."""

    def __init__(
        self,
        kernel: Kernel,
        host: SlotsHost,
        *,
        settings: MaintenanceSettings,
        health: DatabaseHealth,
        orchestration_interval: timedelta,
        job_poll_interval: timedelta,
        schedules: ScheduleTimer | None,
    ) -> None:
        self.kernel = kernel
        self._host = host
        self.settings = settings
        self.run_id = settings.run_id
        self._health = health
        self.orchestration_interval = orchestration_interval
        self.job_poll_interval = job_poll_interval
        self._schedules = schedules
        self.ticks = 0  # maintenance ticks run so far
        self._backoff_until = 0.0  # while the database is away: the next try
        self._signal = Signal()
        self._claims_waiting = False  # runs may be PENDING that full slots left unclaimed
        self._listening: Listening | None = None
        self._claim_now = False  # claim whether or not this worker leads claims (a poll)
        self._runs_waiting = False  # runs may wait: claim them if the lead is ours (or free)
        self._next_poll: float | None = None
        # Serving one run (`wfc run`): whether it has claimed it. Until then a claim hands
        # its first stage to a slot, and polls claim; after, only the tick looks (see `run`).
        self._own_run_claimed = False
        self._next_tick = 0.0  # when the maintenance tick is due (`time.monotonic`)

    @property
    def listening(self) -> Listening | None:
        """The LISTEN connection while it is up (it says whether this worker leads claims)."""
        return self._listening

    # -- wakeups ------------------------------------------------------------
    def nudge(self) -> None:
        """Have the loop look again now (the worker is stopping or giving up)."""
        self._signal.fire()

    def wake_claims(self) -> None:
        """A run may be pending: claim at once (`_claim_if_due`)."""
        self._claim_now = True
        self._signal.fire()

    def slot_freed(self) -> None:
        """A job slot freed up: claim the runs that were left for want of room, lead or not."""
        if self._claims_waiting and self._host.free_slots() > 0:
            self._claims_waiting = False
            self.wake_claims()

    def claimed_at_create(self, run_id: str, *, jobs_waiting: bool, others_pending: bool) -> None:
        """A run created in this process was claimed for this worker in its create's
        transaction (`Kernel.offer_slots`), as `_claim` would have: settle as after it."""
        if run_id == self.run_id:  # its own run: claimed first, as `_claim_own_run` does
            self._own_run_claimed = True
            self._next_tick = time.monotonic() + self.orchestration_interval.total_seconds()
        if jobs_waiting:
            self._host.wake_jobs()
        if others_pending:  # claimed now if a slot is free, else when one frees up
            self._claims_waiting = True
            self.slot_freed()

    @property
    def claims_waiting(self) -> bool:
        """Whether runs may be PENDING that full slots left unclaimed."""
        return self._claims_waiting

    def claimed_at_outcome(
        self, run_id: str | None, *, jobs_waiting: bool, others_pending: bool
    ) -> None:
        """A job's outcome ended its run and claimed for its slot in the same transaction
        (`WorkerHost.room_for_next_run`). Even when that claim took the last run waiting,
        runs are still said to wait (`_claims_waiting`): only a slot freeing up clears
        that, and it then claims as `_claim` does, which takes the claim lead back. An
        outcome's claim does not: the lead was passed on when the slots ran out
        (`_pass_on_claims`), and a worker without it ignores the wakeups of runs created
        elsewhere (`_on_wake`). Cleared here, nothing would take the lead back, and the next
        run created would wait for a poll (`job_poll_interval`). What it costs: the runs
        still in flight each claim, and find nothing, in their last outcome, and the first
        slot to free up makes one claim transaction, as every slot did before."""
        if run_id is not None and others_pending:  # (cleared meanwhile by a freed slot)
            self._claims_waiting = True
        if jobs_waiting:
            self._host.wake_jobs()

    def poll_due_at(self, when: datetime) -> None:
        """A suspended stage is due then: poll at that moment, not up to an orchestration
        interval later."""
        delay = (when - self.kernel.deps.clock.now()).total_seconds()
        due = time.monotonic() + max(0.0, delay)
        if self._next_poll is None or due < self._next_poll:
            self._next_poll = due
            self._signal.fire()

    def _on_wake(self, what: str) -> None:
        if what == "jobs":
            self._host.wake_jobs()
        elif what == "runs-waiting" or (what == "runs" and self._leads_claims()):
            self._wake_claims_if_lead()  # the others leave a created run to the lead
        elif what == "runs-pending" and self._leads_claims() and self._no_slot_busy():
            self._wake_claims_if_lead()  # a busy worker's outcomes claim what waits

    def _no_slot_busy(self) -> bool:
        """Whether no job slot of the worker is busy."""
        return self._host.free_slots() >= self._host.concurrency

    def _wake_claims_if_lead(self) -> None:
        """Runs may wait: claim them if this worker leads claims, or can take the lead."""
        self._runs_waiting = True
        self._signal.fire()

    def _leads_claims(self) -> bool:
        """Whether this worker is the one that claims runs as they are created; without a
        LISTEN connection, no worker is told of them, so each one claims as it polls."""
        return self._listening is None or self._listening.leading

    async def listen(self, wakeups: Wakeups, stopping: asyncio.Event) -> None:
        """Hold a LISTEN connection until `stopping`, reconnecting when it is lost."""
        while not stopping.is_set():
            try:
                async with wakeups.listen(self._on_wake) as listening:
                    self._listening = listening
                    self._wake_claims_if_lead()  # take the claim lead now if nobody holds it
                    try:
                        await first_of(stopping.wait(), listening.until_lost())
                    finally:
                        self._listening = None
                if stopping.is_set():
                    return
                log.warning("the LISTEN connection was lost; polling until it is back")
            except Exception as error:
                delay = self._health.failed("listen", error)
                await wait_at_most(stopping, max(LISTEN_RETRY, timedelta(seconds=delay)))
                continue
            await wait_at_most(stopping, LISTEN_RETRY)

    # -- the loop -------------------------------------------------------------
    async def run(self, stopping: asyncio.Event) -> None:
        """Claim, tick, poll and fire schedules until `stopping`."""
        # One connection for all its claims and ticks (a checkout cycle costs about as much
        # as a statement; a busy worker claims once per run).
        if self.run_id is not None:
            # A host serving one run (`wfc run`) starts with that run just created: nothing
            # for a tick to find yet. It claims the run first (in the run's create, or when
            # woken to claim), and its first tick comes an interval later.
            self._next_tick = time.monotonic() + self.orchestration_interval.total_seconds()
        async with self.kernel.deps.pinning.pinned():
            await self._run_pinned(stopping)

    async def _run_pinned(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            woken = self._signal.arm()
            gone = self._health.check_file()
            if gone is not None:  # nothing written now would ever be read
                delay = self._health.failed("database file", gone)
                await wait_at_most(stopping, timedelta(seconds=delay))
                continue
            if self._next_poll is not None and time.monotonic() >= self._next_poll:
                self._next_poll = None
                await self._poll_now()
                continue
            if self._schedules is not None and self._schedules.is_due():
                await self._fire_schedules(self._schedules)
                continue
            if time.monotonic() >= self._next_tick and self._claims_own_run_first():
                self._next_tick = await self._claim_own_run(self._next_tick)
                continue
            if time.monotonic() >= self._next_tick:
                self.ticks += 1
                room = self._claim_room()
                self._claim_now = False  # the tick claims: a wakeup during it claims again
                with self._handing_off_to_host(in_tick=True):
                    tick = await maintenance_tick(
                        self.kernel, replace(self.settings, max_claims=room), quiet=True
                    )
                self._next_tick = time.monotonic() + self.orchestration_interval.total_seconds()
                if tick.failure is not None:
                    self._backed_off(f"maintenance ({', '.join(tick.errors)})", tick.failure)
                    self._next_tick = max(self._next_tick, self._backoff_until)
                else:
                    self._health.ok()
                self._poll_again(tick)
                more = self._settle_claim(tick.claimed, room, tick.others_pending)
                # A tick claims whoever leads, and so does the claim after it when the tick
                # reached its limit.
                self._claim_now = self._claim_now or more
                if self._claims_waiting:
                    await self._pass_on_claims()
                if tick.claimed or tick.suspended_checked or tick.stale_released:
                    self._host.wake_jobs()
                if self._schedules is not None:  # the fallback: schedules added elsewhere
                    self._schedules.wake()
            else:
                more = await self._guarded(self._claim_if_due(), "claim")
            if more:
                continue
            await self._idle(woken, self._next_tick)

    async def _idle(self, woken: asyncio.Event, next_tick: float) -> None:
        """Wait for a wakeup, or until the next tick, poll or schedule is due."""
        wake_at = min(next_tick, self._next_poll or next_tick)
        if self._schedules is not None:
            wake_at = min(wake_at, self._schedules.due_at() or wake_at)
        polls_claims = self._polls_claims()
        if polls_claims:
            # Nothing tells this worker about runs created elsewhere: look for them as
            # often as for jobs, so a new run does not wait for the full tick (and a
            # lead that died is replaced as soon).
            wake_at = min(wake_at, time.monotonic() + self.job_poll_interval.total_seconds())
        if self._health.down:
            wake_at = max(wake_at, self._backoff_until)
        wait = max(0.0, wake_at - time.monotonic())
        await wait_at_most(woken, timedelta(seconds=wait))
        if not woken.is_set() and polls_claims:
            self._claim_now = True  # a poll: look whatever the wakeups said

    def _polls_claims(self) -> bool:
        """Whether to claim at every poll: when no LISTEN connection makes this worker the
        lead that is told of new runs, unless it serves one run, claimed already."""
        if self._own_run_claimed:
            return False
        return self._listening is None or not self._listening.leading

    async def _claim_own_run(self, next_tick: float) -> float:
        """Claim the run this host serves (`_claims_own_run_first`); when the tick is due."""
        await self._guarded(self._claim_if_due(), "claim")
        if self._own_run_claimed:  # a new run: nothing for a tick to do in it yet
            return time.monotonic() + self.orchestration_interval.total_seconds()
        return next_tick

    def _claims_own_run_first(self) -> bool:
        """Whether to claim before the tick that is due: when serving one run not claimed
        yet (its create did not claim it) and asked to claim (as `run_and_wait` does). The
        tick's own claim hands nothing to such a host (its other steps move other runs
        on too), so its first stage would be queued, and dequeued only after the rest of
        the tick: most of a short `wfc run`'s time, before its first stage. The tick then
        comes an interval later: a run just created has no suspended stage, stale lease or
        stuck state for it to find, and a short run ends before it (each of its statements
        is compiled on first use, some ms apiece in a fresh process)."""
        return self.run_id is not None and not self._own_run_claimed and self._claim_now

    async def _poll_now(self) -> None:
        """A suspended stage is due: check the due stages now, not the rest of a tick."""
        with self._handing_off_to_host(in_tick=True):
            polled = await poll_suspended(
                self.kernel, self.settings.max_suspended_checks, run_id=self.run_id, quiet=True
            )
        if polled.failure is not None:
            self._backed_off("poll", polled.failure)
        else:
            self._health.ok()
        self._poll_again(polled)
        if polled.suspended_checked:
            self._host.wake_jobs()

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
            self.poll_due_at(self.kernel.deps.clock.now())
        elif polled.next_poll_at is not None:
            self.poll_due_at(polled.next_poll_at)

    def _handing_off_to_host(
        self, *, in_tick: bool = False
    ) -> contextlib.AbstractContextManager[None]:
        """Jobs queued here go to the worker's free slots (`wfc.runtime.handoff`); not in a
        tick or poll of a worker that serves one run: those move other runs on too."""
        if in_tick and self.run_id is not None:
            return contextlib.nullcontext()
        return handing_off_to(self._host)

    # -- claims ---------------------------------------------------------------
    def _claim_room(self) -> int:
        """How many runs to claim now: no more than there are slots to start them in."""
        return max(0, min(self.settings.max_claims, self._host.free_slots()))

    def _settle_claim(self, claimed: int, room: int, others_pending: bool) -> bool:
        """After claiming `claimed` of at most `room` runs, decide what claims next: True to
        claim again at once (the per-claim limit was reached); when the slots are what ran
        out, it sets `_claims_waiting`, so the next slot to free up claims (`slot_freed`).
        Neither when the claim saw no other PENDING run (`others_pending`): a run created
        since is told to the lead as any other."""
        if claimed and self.run_id is not None:
            self._own_run_claimed = True  # nothing more to claim: polls stop claiming
        if claimed < room or not others_pending:
            return False
        if room < self.settings.max_claims:
            self._claims_waiting = True
            # A slot may have freed up while the claim ran (a short run handed to it ends
            # before a tick's other steps do): its `slot_freed` found no runs waiting then.
            self.slot_freed()
            return False
        return True

    async def _claim_if_due(self) -> bool:
        """Claim if this worker leads claims (a worker with room takes the lead when nobody
        holds it), or on a poll; runs left to a lead that another worker holds are its."""
        waiting, self._runs_waiting = self._runs_waiting, False
        now, self._claim_now = self._claim_now, False
        if self._own_run_claimed:  # serving one run, claimed (perhaps in its create, since
            return False  # this poll began): nothing for a claim to find; ticks still claim
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
        taken = self._host.jobs_taken
        with handing_off_to(self._host):
            result = await self.kernel.dispatch(
                RunClaimPending(
                    worker_id=self.settings.worker_id, max_claims=room, workflow_run_id=self.run_id
                )
            )
        self._health.ok()  # (only a call that reached the database says it is back)
        queued = sum(len(claimed.job_ids) for claimed in result.claimed)
        if queued > self._host.jobs_taken - taken:  # some were not handed here: look for them
            self._host.wake_jobs()
        more = self._settle_claim(len(result.claimed), room, result.others_pending)
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
        """A call failed: the loop waits as `DatabaseHealth` says (logged there)."""
        delay = self._health.failed(name, error)
        self._backoff_until = time.monotonic() + delay
