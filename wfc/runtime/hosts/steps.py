"""The two steps every host is made of (spec §9.1): process one job, run one maintenance tick.

`process_job` executes a dequeued job and settles it in the queue: completed
(and the run transitioned), suspended (parked until polled), retried at the
time the kernel chose, or failed for good (and the run transitioned, so it
fails at once with the stage's real error). `maintenance_tick` runs the
periodic commands, each isolated so one failing step never stops the others
(`wfc.runtime.hosts.tick`, imported here as before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from wfc.runtime.commands import (
    JobExecute,
    RunTransition,
)
from wfc.runtime.hosts.tick import (
    MaintenanceSettings,
    TickResult,
    announce_worker,
    maintenance_tick,
    poll_suspended,
)
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel
from wfc.runtime.prevalidated import maker
from wfc.runtime.record_builders import quick_init
from wfc.runtime.records import Status
from wfc.runtime.transient import is_transient

log = logging.getLogger("wfc.host")

__all__ = [  # the tick's names are imported from here by the hosts, as they were
    "HEARTBEAT_INTERVAL",
    "JobOutcome",
    "MaintenanceSettings",
    "TickResult",
    "announce_worker",
    "maintenance_tick",
    "poll_suspended",
    "process_job",
]

SUSPEND_FALLBACK = timedelta(seconds=60)
HEARTBEAT_INTERVAL = timedelta(seconds=60)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class JobOutcome:
    """How processing one job ended."""

    outcome: Literal["completed", "suspended", "failed"]
    error: str | None = None
    retried: bool = False
    next_poll_at: datetime | None = None


def idempotency_key(job: JobRecord) -> str:
    """One key per delivery: a redelivered job runs again, a replayed delivery does not."""
    return f"job:{job.id}:attempt:{job.attempt}"


class RunEndedError(Exception):
    """The run of a job ended (cancelled, or failed by another stage) while its stage ran;
    the heartbeat stopped waiting for the stage."""

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id} is {status}: the stage's execution was abandoned")
        self.status = status


class LeaseLostError(Exception):
    """The job's lease was taken back (the worker was paused or too slow to renew it): its
    stage is another delivery's now, so the heartbeat stopped waiting for this one."""

    def __init__(self, job_id: str, attempt: int) -> None:
        super().__init__(
            f"job {job_id} is no longer leased at attempt {attempt}: the stage's execution "
            "was abandoned (another delivery has it)"
        )


class Heartbeat:
    """Renew the job's lease every `every` while the block runs, so a long stage is never
    taken for a dead worker's; touch errors are logged and ignored.

    With `run_id`, each beat also reads the run: once it is no longer RUNNING (cancelled,
    or failed by another stage), nothing the stage does can count, so the block is
    cancelled and `RunEndedError` raised: the slot is free for other work instead of
    waiting, perhaps forever, for a stage nobody needs. With `attempt`, a renewal that
    finds the job no longer leased at that delivery cancels it likewise (`LeaseLostError`):
    whatever it would commit is a ghost (`job.execute` fences it), so waiting is waste.

    The renewing task starts only once the first renewal is due: most stages end long
    before, and a task made and cancelled for each of them was a cost per job. A class,
    not a `contextlib.asynccontextmanager`: a generator, its wrapper and two more
    coroutines per stage were as much Python as the timer itself."""

    __slots__ = (
        "_attempt",
        "_beating",
        "_body",
        "_every",
        "_inside",
        "_job_id",
        "_kernel",
        "_run_id",
        "_stopped",
        "_timer",
    )

    def __init__(
        self,
        kernel: Kernel,
        job_id: str,
        every: timedelta | None,
        *,
        run_id: str | None = None,
        attempt: int | None = None,
    ) -> None:
        self._kernel = kernel
        self._job_id = job_id
        self._every = every
        self._run_id = run_id
        self._attempt = attempt
        self._body: asyncio.Task[Any] | None = None
        self._stopped: list[Exception] = []  # why `_beat` cancelled the body
        self._inside = False  # the body is in the block: a cancel now lands there
        self._timer: asyncio.TimerHandle | None = None
        self._beating: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> None:
        every = self._every
        if every is None:
            return
        self._body = asyncio.current_task()
        self._inside = True
        self._timer = asyncio.get_running_loop().call_later(every.total_seconds(), self._start)

    def _start(self) -> None:
        beat = asyncio.create_task(self._beat(), name=f"heartbeat:{self._job_id}")
        self._beating.append(beat)

    def _stop(self, why: Exception) -> None:
        if self._inside and self._body is not None:
            self._stopped.append(why)
            self._body.cancel()

    async def _beat(self) -> None:
        kernel, job_id, attempt, run_id = self._kernel, self._job_id, self._attempt, self._run_id
        assert self._every is not None
        while True:
            try:
                held = await kernel.deps.jobs.touch(job_id, attempt=attempt)
                if attempt is not None and not held:
                    self._stop(LeaseLostError(job_id, attempt))
                    return
                if run_id is not None:
                    run = await kernel.deps.persistence.get_run(run_id)
                    if run is None or run.status is not Status.RUNNING:
                        status = "gone" if run is None else run.status.value
                        self._stop(RunEndedError(run_id, status))
                        return
            except Exception:
                log.warning("heartbeat of job %s failed", job_id, exc_info=True)
            await asyncio.sleep(self._every.total_seconds())

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _trace: Any
    ) -> None:
        if self._timer is None:  # no `every`: nothing was started
            return
        body, stopped = self._body, self._stopped
        # Cancelled by `_beat` alone: the block ends with its reason instead.
        ending = (
            stopped[0]
            if kind is asyncio.CancelledError
            and stopped
            and body is not None
            and body.uncancel() == 0
            else None
        )
        self._inside = False
        self._timer.cancel()
        for task in self._beating:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ending is not None:
            raise ending from None


async def process_job(
    kernel: Kernel,
    job: JobRecord,
    *,
    heartbeat_every: timedelta | None = None,
    delivery_may_repeat: bool = False,
    watch_run: bool = False,
) -> JobOutcome:
    """Execute a leased job and settle it in the queue; raises only if `job.execute` raises.

    With `heartbeat_every` the job's lease is renewed while the stage runs.
    Its storage calls share one connection (see `Pinning`).

    `delivery_may_repeat` is for jobs that arrive as messages (a queue that
    delivers at least once): the execution runs under the delivery's idempotency
    key, so a repeated message replays the result instead of running the stage
    again. A job this host leased itself needs no key: only the lease holder
    runs that attempt, and a job taken back from it comes again as a new attempt.

    With `watch_run` (and a heartbeat) the stage is abandoned once its run is no
    longer RUNNING (see `Heartbeat`): the job fails for good, as a ghost does.
    """
    async with kernel.deps.pinning.pinned():
        try:
            return await _process_job(kernel, job, heartbeat_every, delivery_may_repeat, watch_run)
        except RunEndedError as ended:
            error = str(ended)
            log.info("job %s abandoned: %s", job.id, error, extra={"job_id": job.id})
            fence = None if delivery_may_repeat else job.attempt
            await kernel.deps.jobs.fail(job.id, error, retry_at=None, attempt=fence)
            return JobOutcome(outcome="failed", error=error)
        except LeaseLostError as lost:  # nothing to write: the job is another delivery's
            log.warning("job %s abandoned: %s", job.id, lost, extra={"job_id": job.id})
            return JobOutcome(outcome="failed", error=str(lost))


async def _process_job(
    kernel: Kernel, job: JobRecord, heartbeat_every: timedelta | None, keyed: bool, watch: bool
) -> JobOutcome:
    jobs = kernel.deps.jobs
    config = job.payload.get("config") or {}
    # Queue writes are fenced on the delivery this host leased; a job that arrived as a
    # message was never leased in the queue (its attempt is the message's), so its writes
    # cannot be, and its idempotency key is what keeps a repeated delivery from counting.
    fence = None if keyed else job.attempt
    command = _job_execute(
        workflow_run_id=job.run_id,
        workflow_id=job.workflow_id,
        stage_id=job.stage_id,
        config=config,
        attempt=max(job.attempt, 1),
        idempotency_key=idempotency_key(job) if keyed else None,
        transition=True,
        job_id=None if keyed else job.id,  # see `fence`
        item=job.payload.get("item"),
        generation=job.payload.get("generation", 0),
        concurrency_key=job.concurrency_key,
    )
    if heartbeat_every is None:  # nothing to renew: no context (an async generator) to enter
        result = await kernel.dispatch(command)
    else:
        watched = job.run_id if watch else None
        async with Heartbeat(kernel, job.id, heartbeat_every, run_id=watched, attempt=fence):
            result = await kernel.dispatch(command)
    if result.outcome == "completed":
        # The run was transitioned with the outcome, unless that needed the run's jobs or
        # this was a repeated delivery of a stage completed before; on shared transactions
        # the job was completed in the same commit. Otherwise a crash before the job is
        # completed leaves it leased; it is reaped and redelivered, and the
        # completed-stage guard answers the redelivery without running the stage again.
        transition = result.transition
        if transition is None:
            transition = await kernel.dispatch(RunTransition(workflow_run_id=job.run_id))
        if not result.job_completed:
            await jobs.complete(job.id, attempt=fence)
        return JobOutcome(outcome="completed")
    if result.outcome == "suspended":
        next_poll = result.next_poll_at or kernel.deps.clock.now() + SUSPEND_FALLBACK
        await jobs.suspend(job.id, next_poll, attempt=fence)
        return JobOutcome(outcome="suspended", next_poll_at=next_poll)
    error = result.error or "Unknown error"
    retry_at = None if result.ghost else result.retry_at
    retried = await jobs.fail(job.id, error, retry_at=retry_at, attempt=fence)
    if not retried and not result.ghost:
        await _transition_after_final_failure(kernel, job)
    return JobOutcome(outcome="failed", error=error, retried=retried)


_MAKE_JOB_EXECUTE = maker(
    JobExecute, checked=frozenset({"config", "attempt", "item", "generation"})
)


def _job_execute(**values: Any) -> JobExecute:
    """`JobExecute(**values)` for a job's values, built without validating them when they
    are what validation would keep, as they are for a job the kernel queued: the job's
    payload comes back from the database (or, handed on, from the kernel itself) as JSON
    data, and validating it again cost about 3 µs a stage. Anything else, a payload
    written by hand into the jobs table say, is validated and refused as before.

    What is checked is what `JobExecute` would check: the strings, the optional strings,
    `transition`, the ranges of `attempt`, `item` and `generation`, and `config` a dict of
    dicts keyed by strings (its values are `Any`). Types are compared exactly (`bool` is
    not an `int`, a `str` subclass not a `str`): a value of another type is left to
    pydantic, which may convert it. The command shares the payload's config dicts where
    validation would have copied them; nothing changes a command's or a payload's config.
    """
    config = values["config"]
    item = values["item"]
    if (
        type(values["workflow_run_id"]) is str
        and type(values["workflow_id"]) is str
        and type(values["stage_id"]) is str
        and type(values["attempt"]) is int
        and values["attempt"] >= 1
        and (item is None or (type(item) is int and item >= 0))
        and type(values["generation"]) is int
        and values["generation"] >= 0
        and type(values["transition"]) is bool
        and type(values["idempotency_key"]) in _TEXT_OR_NONE
        and type(values["job_id"]) in _TEXT_OR_NONE
        and type(values["concurrency_key"]) in _TEXT_OR_NONE
        and type(config) is dict
        and (not config or _text_keyed_dicts(config))
    ):
        return _MAKE_JOB_EXECUTE(**values)
    return JobExecute(**values)


def _text_keyed_dicts(config: dict[Any, Any]) -> bool:
    """Whether `config` maps strings to dicts keyed by strings (`_job_execute`'s check of a
    non-empty config). A job's config is its run's, a slice per stage, so every job asks
    this of every stage: loops, not a generator per slice (two `all`s over generators
    were 1,100 bytecodes a `fan` run)."""
    for key, slice_ in config.items():
        if type(key) is not str or type(slice_) is not dict:
            return False
        for name in slice_:
            if type(name) is not str:
                return False
    return True


_TEXT_OR_NONE = (str, type(None))


FINAL_TRANSITION_ATTEMPTS = 4
FINAL_TRANSITION_BACKOFF = timedelta(milliseconds=250)  # doubled after each attempt


async def _transition_after_final_failure(kernel: Kernel, job: JobRecord) -> None:
    """Transition the run whose stage just failed for good, so it fails now, with that
    stage's error. The job is already settled FAILED, so nothing redelivers it: a
    transient error is retried with backoff (about 2 s in all), and if the run still
    did not move, the stuck-run reaper (`run.reapStuck`, every maintenance tick) finds
    it with no live job and no open stage and transitions it. A deterministic error
    is not retried; the reaper is its backstop too."""
    delay = FINAL_TRANSITION_BACKOFF.total_seconds()
    for attempt in range(1, FINAL_TRANSITION_ATTEMPTS + 1):
        try:
            await kernel.dispatch(RunTransition(workflow_run_id=job.run_id))
            return
        except Exception as error:
            if attempt < FINAL_TRANSITION_ATTEMPTS and is_transient(error):
                log.warning(
                    "transition of run %s after the final failure of job %s failed "
                    "(attempt %d of %d); retrying in %.2fs: %s",
                    job.run_id,
                    job.id,
                    attempt,
                    FINAL_TRANSITION_ATTEMPTS,
                    delay,
                    error,
                )
                await asyncio.sleep(delay)
                delay *= 2
                continue
            log.exception(
                "transition of run %s after the final failure of job %s failed; "
                "the stuck-run reaper will end the run",
                job.run_id,
                job.id,
                extra={"run_id": job.run_id, "job_id": job.id},
            )
            return
