"""The maintenance tick (spec §9.1): the periodic commands a host runs, each isolated so
one failing step never stops the others: claim, poll (transitioning resumed runs), reap
leases, flush the outbox, reap stuck runs, then the fleet's housekeeping."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from wfc.plan import DEFAULT_QUEUE
from wfc.runtime.commands import (
    LeaseReapStale,
    OutboxFlush,
    RunClaimPending,
    RunReapStuck,
    RunTransition,
    StagePollSuspended,
)
from wfc.runtime.kernel import Kernel
from wfc.runtime.kernel.adopt import adopt_runs
from wfc.runtime.kernel.plans import stored, unrecorded
from wfc.runtime.kernel.retention import prune_finished_runs
from wfc.runtime.records import WorkerRecord

log = logging.getLogger("wfc.host")


@dataclass(frozen=True, slots=True, kw_only=True)
class MaintenanceSettings:
    """Limits and thresholds of one maintenance tick (spec §12 defaults)."""

    worker_id: str
    max_claims: int = 10  # 0: claim nothing this tick
    max_suspended_checks: int = 10
    max_outbox_flush: int = 100
    stale_lease_threshold: timedelta = timedelta(minutes=5)
    run_id: str | None = None  # a host serving one run (`wfc run`) claims and polls it only
    # How long the worker counts as alive after a tick announced it (`wfc workers`, and
    # `wfc runs show` on a run waiting for a worker of its plan): several ticks' worth.
    presence_ttl: timedelta = timedelta(minutes=1)
    # Delete finished runs older than this, a batch or two per tick (None: keep them all).
    retain: timedelta | None = None
    prune_batches: int = 2
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)  # the queues the worker takes jobs of

    @property
    def stuck_threshold(self) -> timedelta:
        """How long a run may show no activity before it is repaired or failed."""
        return max(3 * self.stale_lease_threshold, timedelta(minutes=5))


@dataclass(slots=True)
class TickResult:
    """What one maintenance tick did; `errors` names the steps that raised."""

    claimed: int = 0
    others_pending: bool = False  # the claim saw more PENDING runs than it took
    suspended_checked: int = 0
    stale_released: int = 0
    events_flushed: int = 0
    stuck_reaped: int = 0
    runs_pruned: int = 0
    runs_adopted: int = 0
    errors: list[str] = field(default_factory=list)
    failure: Exception | None = None  # the first error, for a host that handles them itself
    next_poll_at: datetime | None = None  # when a stage the poll checked is due again


def _ms(delta: timedelta) -> int:
    return int(delta / timedelta(milliseconds=1))


# The commands a maintenance tick dispatches, made once per settings: a tick used to build
# them anew, validation and all, and a test kernel ticks once per round of every run it
# drives. The commands are frozen, so one is shared by every tick with these settings;
# settings no command accepts raise in their step on every tick, as they always did (an
# exception is not cached), and the other steps still run.


@functools.lru_cache(maxsize=64)
def _claim_command(settings: MaintenanceSettings) -> RunClaimPending:
    return RunClaimPending(
        worker_id=settings.worker_id,
        max_claims=settings.max_claims,
        workflow_run_id=settings.run_id,
    )


@functools.lru_cache(maxsize=64)
def _poll_command(settings: MaintenanceSettings) -> StagePollSuspended:
    return StagePollSuspended(
        max_checks=settings.max_suspended_checks, workflow_run_id=settings.run_id
    )


@functools.lru_cache(maxsize=64)
def reap_stale_command(settings: MaintenanceSettings) -> LeaseReapStale:
    return LeaseReapStale(stale_threshold_ms=_ms(settings.stale_lease_threshold))


@functools.lru_cache(maxsize=64)
def _flush_command(settings: MaintenanceSettings) -> OutboxFlush:
    return OutboxFlush(max_events=settings.max_outbox_flush)


@functools.lru_cache(maxsize=64)
def reap_stuck_command(settings: MaintenanceSettings) -> RunReapStuck:
    return RunReapStuck(stuck_threshold_ms=_ms(settings.stuck_threshold))


async def poll_suspended(
    kernel: Kernel, max_checks: int, *, run_id: str | None = None, quiet: bool = False
) -> TickResult:
    """Check due suspended stages and transition the runs they resumed (the poll's own
    commit moves most on; one whose group also holds a failed stage needs this); the
    result's `next_poll_at` says when to poll again. A host calls this alone when a stage
    is due, rather than waiting for a full maintenance tick. A run whose transition
    fails is left to the stuck-run reaper; the others still move on."""
    command = StagePollSuspended(max_checks=max_checks, workflow_run_id=run_id)
    return await _poll(kernel, command, quiet=quiet)


async def _poll(kernel: Kernel, command: StagePollSuspended, *, quiet: bool) -> TickResult:
    """`poll_suspended` with its command made (once per settings, for the tick)."""
    polled = TickResult()
    result = await kernel.dispatch(command)
    polled.suspended_checked = result.checked
    polled.next_poll_at = result.next_due_at
    for run_id in result.resumed_workflow_run_ids:
        try:
            await kernel.dispatch(RunTransition(workflow_run_id=run_id))
        except Exception as error:
            polled.errors.append("poll")
            polled.failure = polled.failure or error
            if not quiet:
                log.exception(
                    "transition of resumed run %s failed; the stuck-run reaper will move it",
                    run_id,
                    extra={"run_id": run_id},
                )
    return polled


async def maintenance_tick(
    kernel: Kernel,
    settings: MaintenanceSettings,
    *,
    quiet: bool = False,
    idle: Callable[[str], bool] | None = None,
) -> TickResult:
    """Claim, poll (transitioning resumed runs), reap leases, flush the outbox, reap stuck runs.

    Each failing step is logged with its traceback, unless `quiet`: a host that handles
    `TickResult.failure` itself (the worker's `DatabaseHealth`) logs one line per outage
    rather than a traceback per step per tick. A step for which `idle(name)` is true,
    asked just before it, is not run: the caller knows that it would do nothing (the
    test harness asks the memory adapters, which tell at once; a test kernel ticks every
    round of every run it drives)."""
    tick = TickResult()

    def failed(name: str, error: Exception) -> None:
        tick.errors.append(name)
        tick.failure = tick.failure or error
        if not quiet:
            log.error("maintenance step %s failed", name, exc_info=error)

    async def announce() -> None:
        await _announce(kernel, settings)

    async def adopt() -> None:
        tick.runs_adopted = await _adopt(kernel, settings)

    async def claim() -> None:
        if settings.max_claims < 1:  # the host has no room for another run now
            return
        result = await kernel.dispatch(_claim_command(settings))
        tick.claimed = len(result.claimed)
        tick.others_pending = result.others_pending

    async def poll() -> None:
        polled = await _poll(kernel, _poll_command(settings), quiet=quiet)
        tick.suspended_checked = polled.suspended_checked
        tick.next_poll_at = polled.next_poll_at
        if polled.failure is not None:
            failed("poll", polled.failure)

    async def reap_leases() -> None:
        result = await kernel.dispatch(reap_stale_command(settings))
        tick.stale_released = result.released

    async def flush() -> None:
        tick.events_flushed = await _flush(kernel, settings)

    async def prune() -> None:
        tick.runs_pruned = await _prune(kernel, settings)

    async def reap_stuck() -> None:
        result = await kernel.dispatch(reap_stuck_command(settings))
        tick.stuck_reaped = result.failed + result.recovered + result.transitioned

    steps = (
        ("claim", claim),
        ("poll", poll),
        ("reap_stale", reap_leases),
        ("flush", flush),
        ("reap_stuck", reap_stuck),
        # Fleet housekeeping last: the steps above are what runs wait on.
        ("announce", announce),
        ("adopt", adopt),
        ("prune", prune),
    )
    await _run_steps(steps, failed, idle)
    return tick


async def _run_steps(
    steps: Sequence[tuple[str, Callable[[], Awaitable[None]]]],
    failed: Callable[[str, Exception], None],
    idle: Callable[[str], bool] | None,
) -> None:
    """Each step in turn, its error told to `failed`; those `idle` says would do nothing
    are skipped."""
    for name, step in steps:
        if idle is not None and idle(name):
            continue
        try:
            await step()
        except Exception as error:
            failed(name, error)


async def _announce(kernel: Kernel, settings: MaintenanceSettings) -> None:
    if settings.run_id is None:  # a host serving one run serves nobody else
        await announce_worker(kernel, settings.worker_id, settings.presence_ttl, settings.queues)


async def _adopt(kernel: Kernel, settings: MaintenanceSettings) -> int:
    """Runs of older plans this tick moved onto the host's (`wfc.runtime.kernel.adopt`)."""
    return 0 if settings.run_id is not None else await adopt_runs(kernel.deps)


async def _flush(kernel: Kernel, settings: MaintenanceSettings) -> int:
    """Events this tick delivered; none when the host's own flusher delivers them."""
    if settings.max_outbox_flush < 1:
        return 0
    return (await kernel.dispatch(_flush_command(settings))).published


async def _prune(kernel: Kernel, settings: MaintenanceSettings) -> int:
    """Runs deleted by this tick's share of retention (`MaintenanceSettings.retain`)."""
    if settings.retain is None or settings.run_id is not None:
        return 0
    pruned = await prune_finished_runs(
        kernel.deps, settings.retain, max_batches=settings.prune_batches
    )
    return pruned.runs


async def announce_worker(
    kernel: Kernel,
    worker_id: str,
    ttl: timedelta,
    queues: Sequence[str] = (DEFAULT_QUEUE,),
) -> None:
    """Say that `worker_id` is alive for `ttl` more, serving the kernel's plans (which are
    stored, once per process, so a run of them can be shown whoever serves it later) on
    `queues`."""
    deps = kernel.deps
    workflows = deps.registry.workflows()
    fresh = unrecorded(deps, workflows)
    if fresh:
        await deps.persistence.record_plans(fresh)
        stored(deps, workflows)
    now = deps.clock.now()
    await deps.persistence.announce_worker(
        WorkerRecord(
            worker_id=worker_id,
            plans=deps.registry.plans(),
            started_at=now,
            seen_at=now,
            expires_at=now + ttl,
            queues=list(queues),
        )
    )
