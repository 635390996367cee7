"""`run_and_wait`: create a run and wait for its end, for scripts, tests and `wfc run` (spec §9.3).

Without a host it starts a `WorkerHost` in this process for the duration of
the call (and stops it, also on errors, releasing the stages it was running), so
a script needs nothing else running. It is started before the run is created, for
the run's id, so the create claims the run for it (`Kernel.offer_slots`). That
host serves the new run only: other runs in the database are for the workers
serving it, and a `wfc run` stopped early must not leave their stages behind. With a host already serving, it only
creates the run and watches it. Its own host tells the call when a transaction of its
kernel ended the run (`WorkerHost.run_end_signal`), so the call returns as the run ends
rather than at its next poll. With a shared host, and in `wait_for_run`, the kernel's
waiters are told by any kernel of this process and, for a run another process ended,
by the database (`wfc.runtime.run_end_waits`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from wfc.errors import InvalidSignalPayloadError, validation_problems
from wfc.runtime.commands import RunCreate, RunSignal, RunSignalResult
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts.waiting import Signal, wait_at_most
from wfc.runtime.hosts.worker import WorkerHost
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import TERMINAL, RunRecord, StageRecord, Status
from wfc.runtime.run_end_waits import RunEndSignal


@dataclass(frozen=True, slots=True, kw_only=True)
class StageSummary:
    """One stage of a finished (or running) run, as people want to see it."""

    stage_id: str
    name: str
    status: Status
    attempts: int
    duration_ms: int | None
    error: str | None

    @classmethod
    def of(cls, stage: StageRecord) -> StageSummary:
        return cls(
            stage_id=stage.stage_id,
            name=stage.stage_name,
            status=stage.status,
            attempts=stage.attempt,
            duration_ms=stage.duration_ms,
            error=stage.error,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSnapshot:
    """A run and its stages at one moment."""

    run: RunRecord
    stages: list[StageSummary]

    @property
    def run_id(self) -> str:
        return self.run.id

    @property
    def status(self) -> Status:
        return self.run.status

    @property
    def output(self) -> Any:
        return self.run.output

    @property
    def error(self) -> dict[str, Any] | None:
        return self.run.error

    @property
    def finished(self) -> bool:
        return self.run.status in TERMINAL

    @property
    def total_cost(self) -> float:
        return self.run.total_cost

    @property
    def total_tokens(self) -> int:
        return self.run.total_tokens

    @property
    def duration_ms(self) -> int | None:
        return self.run.duration_ms


OWN_HOST_TICK = timedelta(seconds=1)
"""How often a host started by `run_and_wait` re-checks suspended stages and leases."""

OWN_HOST_GRACE = timedelta(seconds=5)
"""How long its in-flight stages get when `run_and_wait` is cancelled (Ctrl-C in `wfc run`)."""

OnChange = Callable[[RunSnapshot], Awaitable[None] | None]


async def snapshot(kernel: Kernel, run_id: str) -> RunSnapshot:
    """The run and its stages now; `LookupError` when there is no such run."""
    db = kernel.deps.persistence
    run = await db.get_run(run_id)
    if run is None:
        raise LookupError(f"run {run_id} not found")
    stages = sorted(await db.stages_of_run(run_id), key=lambda s: s.stage_number)
    return RunSnapshot(run=run, stages=[StageSummary.of(s) for s in stages])


async def wait_for_run(
    kernel: Kernel,
    run_id: str,
    *,
    poll_interval: timedelta = timedelta(milliseconds=50),
    on_change: OnChange | None = None,
    timeout: timedelta | None = None,
    host: WorkerHost | None = None,
) -> RunSnapshot:
    """Watch a run until it is COMPLETED, FAILED or CANCELLED; call `on_change` when it moved.

    It looks every `poll_interval`, and also as soon as the run ends, whichever process
    ends it (`Deps.run_end_waits`): a kernel of this process tells it after the commit;
    another process's end is told by the database (a NOTIFY on PostgreSQL, a change of
    the file on SQLite, where a change of the run's stages wakes it too). The poll is
    the bound if a notification is missed. `host` is no longer needed (the kernel of a
    host in this process tells it already); given, its kernel's waiters are used (the
    same, for kernels made on one storage)."""
    waits = (kernel if host is None else host.kernel).deps.run_end_waits
    async with waits.waiting(run_id) as ended:
        return await _watch(kernel, run_id, poll_interval, on_change, timeout, ended=ended)


async def _watch(
    kernel: Kernel,
    run_id: str,
    poll_interval: timedelta,
    on_change: OnChange | None,
    timeout: timedelta | None,
    *,
    ended: Signal | RunEndSignal,
) -> RunSnapshot:
    """`wait_for_run`: it looks again as soon as `ended` fires, not only every
    `poll_interval`: a run that ends just after a look was seen up to a poll late (50 ms
    by default, ten times a short run's time)."""
    deadline = None if timeout is None else time.monotonic() + timeout.total_seconds()
    previous: tuple[object, ...] | None = None
    while True:
        woken = ended.arm()
        current = await snapshot(kernel, run_id)
        key = (current.run.status, current.run.version, *current.stages)
        if on_change is not None and key != previous:
            outcome = on_change(current)
            if inspect.isawaitable(outcome):
                await outcome
        previous = key
        if current.finished:
            return current
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"run {run_id} is still {current.status.value}")
        wait = poll_interval
        if deadline is not None:
            wait = min(wait, timedelta(seconds=max(0.0, deadline - time.monotonic())))
        await wait_at_most(woken, wait)


async def run_and_wait(
    kernel: Kernel,
    workflow_id: str,
    input: dict[str, Any],
    *,
    config: dict[str, dict[str, Any]] | None = None,
    priority: int | None = None,
    idempotency_key: str | None = None,
    host: WorkerHost | None = None,
    concurrency: int = 4,
    poll_interval: timedelta = timedelta(milliseconds=50),
    on_change: OnChange | None = None,
    on_created: Callable[[str], None] | None = None,
    timeout: timedelta | None = None,
) -> RunSnapshot:
    """Create a run, make sure a worker drives it, and return it finished.

    Without `host`, a worker with `concurrency` slots runs this run (and no other)
    in this process for the duration of the call. Bad input raises
    `InvalidRunInputError` before anything is created; `on_created` is told the
    new run's id at once (to name it should the call be cancelled). The finished
    run's `status` tells success from failure; this never raises for a run that failed.
    """
    own_host = host is None
    run_id: str | None = None
    if host is None:
        # Its own host is started before the run is created, for the run's id, so the
        # create claims the run for it and hands it the first stage in one transaction
        # (`Kernel.offer_slots`): no transaction of its own to claim it.
        run_id = kernel.deps.ids.new_id()
        worker = _own_host(kernel, run_id, concurrency, poll_interval)
        worker.before_its_run_exists()
    else:
        worker = host
    try:
        await worker.start()
        created = await kernel.dispatch(
            RunCreate(
                idempotency_key=idempotency_key or f"run-and-wait:{kernel.deps.ids.new_id()}",
                workflow_id=workflow_id,
                input=input,
                config=config or {},
                priority=priority,
                run_id=run_id,
            )
        )
        if on_created is not None:
            on_created(created.workflow_run_id)
        if own_host and created.workflow_run_id != run_id:  # the key's first run, replayed
            await worker.stop()
            worker = _own_host(kernel, created.workflow_run_id, concurrency, poll_interval)
            await worker.start()
            worker.wake_jobs()  # the run may have jobs queued already
        worker.wake_claims()  # (a one-run host that has its run claims nothing more)
        if own_host:  # it drives the run here: its kernel tells it, no listening needed
            ended = worker.run_end_signal(created.workflow_run_id)
            return await _watch(
                kernel, created.workflow_run_id, poll_interval, on_change, timeout, ended=ended
            )
        # A shared host's fleet may end the run in another process: told by the database.
        return await wait_for_run(
            kernel,
            created.workflow_run_id,
            poll_interval=poll_interval,
            on_change=on_change,
            timeout=timeout,
            host=worker,  # its kernel is told of the ends it makes (the caller's may not be)
        )
    finally:
        if own_host:
            await worker.stop()


def _own_host(
    kernel: Kernel, run_id: str, concurrency: int, poll_interval: timedelta
) -> WorkerHost:
    """The worker `run_and_wait` starts for `run_id` alone, for the duration of the call."""
    return WorkerHost(
        kernel,
        worker_id=f"run-and-wait-{kernel.deps.ids.new_id()}",
        concurrency=concurrency,
        orchestration_interval=OWN_HOST_TICK,
        job_poll_interval=poll_interval,
        shutdown_grace=OWN_HOST_GRACE,
        run_id=run_id,
    )


async def signal_run(
    kernel: Kernel,
    run_id: str,
    name: str,
    payload: Any = None,
    *,
    key: str | None = None,
    host: WorkerHost | None = None,
) -> RunSignalResult:
    """Send the signal `name` with `payload` to a run (`run.signal`): the stage waiting for it
    resumes in this call's commit, or the first stage to wait for it takes it. `key` makes
    a retried send one signal. With `host` (a worker serving the run in this process), the
    stages the signal queues go straight to its free slots. `payload` is JSON data, or a
    pydantic model (the generated `<Signal>Payload`), sent as its JSON dump. Raises
    `SignalRefusedError` or `InvalidSignalPayloadError` (every failing field named; a
    payload that is not JSON data too) and keeps nothing then."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    try:
        command = RunSignal(workflow_run_id=run_id, name=name, payload=payload, idempotency_key=key)
    except ValidationError as error:
        raise InvalidSignalPayloadError(name, validation_problems(error)) from None
    if host is None:
        return await kernel.dispatch(command)
    with handing_off_to(host):
        result = await kernel.dispatch(command)
    host.wake_jobs()
    return result
