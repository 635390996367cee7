"""`make_test_kernel`: a kernel on a fake clock (memory ports by default), and helpers to drive runs.

Pass `storage=` (anything with `persistence`, `jobs`, `blobs` and `ai_calls`,
such as `wfc.runtime.adapters.sql.open_storage(url, clock=clock)`) to run the
same tests against a real database; the inspection helpers (`all_runs`,
`all_jobs`, `all_outbox`, `all_logs`, `job`) use only the ports.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wfc.errors import RecordNotFoundError
from wfc.runtime.adapters.memory import (
    CollectingEventSink,
    FakeClock,
    MemoryAICallLogger,
    MemoryBlobStore,
    MemoryJobTransport,
    MemoryPersistence,
    NoopScheduler,
    NoPinning,
    SequentialIds,
)
from wfc.runtime.commands import OutboxFlush, RunCreate
from wfc.runtime.handoff import current_taker, handing_off_to
from wfc.runtime.hosts.steps import MaintenanceSettings, TickResult, maintenance_tick, process_job
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel
from wfc.runtime.plugins import Plugin, PluginRunner
from wfc.runtime.ports import (
    AICallLogger,
    BlobStore,
    EventSink,
    JobTransport,
    Persistence,
    Storage,
)
from wfc.runtime.records import TERMINAL, LogRecord, OutboxRecord, RunRecord, Status
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow
from wfc.testing import shortcuts

# The flush `flush` and `drive` dispatch: commands are frozen, so one serves every call
# (made anew, it was validated once per round of every run driven).
_FLUSH = OutboxFlush(max_events=10_000)


@dataclass(slots=True)
class MemoryStorage:
    """The memory adapters as one `Storage`."""

    persistence: MemoryPersistence
    jobs: MemoryJobTransport
    blobs: MemoryBlobStore
    ai_calls: MemoryAICallLogger
    pinning: NoPinning = field(default_factory=NoPinning)
    shared_transactions: bool = False  # a memory transaction rolls back persistence alone


@dataclass(slots=True)
class TestKernel:
    """A kernel and its ports, with shortcuts for the loops a host would run."""

    __test__ = False  # not a pytest test class

    kernel: Kernel
    clock: FakeClock
    persistence: Persistence
    jobs: JobTransport
    blobs: BlobStore
    events: EventSink
    ids: SequentialIds
    registry: WorkflowMap
    scheduler: NoopScheduler
    ai_calls: AICallLogger
    settings: MaintenanceSettings

    async def all_runs(self) -> list[RunRecord]:
        """Every run, oldest first."""
        return list(reversed(await self.persistence.list_runs(limit=1_000_000)))

    async def all_jobs(self) -> list[JobRecord]:
        """Every job, by run (oldest run first), then in enqueue order."""
        return [j for run in await self.all_runs() for j in await self.jobs.jobs_of_run(run.id)]

    async def job(self, job_id: str) -> JobRecord:
        """One job; `RecordNotFoundError` when unknown."""
        for job in await self.all_jobs():
            if job.id == job_id:
                return job
        raise RecordNotFoundError("Job", job_id)

    async def all_outbox(self) -> list[OutboxRecord]:
        """Every outbox event, by run (oldest run first), then by sequence."""
        runs = await self.all_runs()
        return [e for run in runs for e in await self.persistence.outbox_of_run(run.id)]

    async def all_logs(self) -> list[LogRecord]:
        """Every log line, by run (oldest run first), then in write order."""
        return [
            log
            for run in await self.all_runs()
            for log in await self.persistence.logs_of_run(run.id)
        ]

    @property
    def sink(self) -> CollectingEventSink:
        """The collecting sink (when the kernel was not given plugins)."""
        assert isinstance(self.events, CollectingEventSink), "this test kernel runs plugins"
        return self.events

    async def create_run(
        self,
        workflow_id: str,
        input: dict[str, Any],
        *,
        config: dict[str, dict[str, Any]] | None = None,
        priority: int | None = None,
    ) -> str:
        """Create a run (a fresh idempotency key each call); its id."""
        command = self._create_command(workflow_id, input, config, priority)
        return (await self.kernel.dispatch(command)).workflow_run_id

    def _create_command(
        self,
        workflow_id: str,
        input: dict[str, Any],
        config: dict[str, dict[str, Any]] | None,
        priority: int | None = None,
    ) -> RunCreate:
        return RunCreate(
            idempotency_key=self.ids.new_id(),
            workflow_id=workflow_id,
            input=input,
            config=config or {},
            priority=priority,
        )

    async def tick(self) -> TickResult:
        """One maintenance tick, as a worker would run it."""
        return await maintenance_tick(self.kernel, self.settings)

    async def work(self, max_jobs: int | None = None) -> int:
        """Process due jobs one at a time until none are due (or `max_jobs`); how many."""
        return await work(self.kernel, max_jobs)

    async def flush(self) -> int:
        """Deliver outbox events to the sink; how many."""
        return (await self.kernel.dispatch(_FLUSH)).published

    async def drive(self, run_id: str, *, max_rounds: int = 500) -> RunRecord:
        """Tick and work until the run ends, moving the clock to the next due job or poll."""
        return await drive(self.kernel, self.clock, self.settings, run_id, max_rounds=max_rounds)

    async def run(
        self,
        workflow_id: str,
        input: dict[str, Any],
        *,
        config: dict[str, dict[str, Any]] | None = None,
    ) -> RunRecord:
        """Create a run and drive it to its end.

        When the run would be claimed alone (`shortcuts.claim_alone`: no other run open, no job
        queued or leased, nothing suspended, its first group one plain stage), its create
        claims it too (`Kernel.create_for`) and hands its first stage to the first round's
        `work`, as that round's claim would have: one transaction where there were two,
        with the same rows, jobs and events in the same order."""
        first = shortcuts.first_run_taker(self.kernel, workflow_id, self.settings.worker_id)
        if first is None:
            return await self.drive(await self.create_run(workflow_id, input, config=config))
        command = self._create_command(workflow_id, input, config)
        run_id = (await self.kernel.create_for(command, first)).workflow_run_id
        return await drive(self.kernel, self.clock, self.settings, run_id, first=first)


async def work(kernel: Kernel, max_jobs: int | None = None) -> int:
    """Lease and process due jobs one at a time until none are due (or `max_jobs`).

    On the memory queue, a job a stage's transition queues while no other job waits is
    handed straight to this loop (`wfc.runtime.handoff`, as a worker takes the jobs it
    queued): it is the job the next dequeue would lease, so the order is the same, and
    its stage starts with the transition that queued it, saving that stage a dequeue, a
    start transaction and the reads of its run and outputs (`wfc.runtime.kernel.warm`).
    """
    # Not under a taker of the caller's own, which is then the one handed jobs go to.
    taker = shortcuts.taker_of(kernel) if current_taker() is None else None
    with handing_off_to(taker) if taker is not None else nullcontext():
        return await _work(kernel, max_jobs, taker)


async def _work(kernel: Kernel, max_jobs: int | None, taker: shortcuts.NextJob | None) -> int:
    """`work`'s loop, jobs queued in it handed to `taker` (None: every job dequeued)."""
    done = 0
    plans = taker.plans if taker is not None else kernel.deps.registry.plans()
    jobs = kernel.deps.jobs
    while max_jobs is None or done < max_jobs:
        job = taker.next() if taker is not None else None
        if job is None:
            leased = await jobs.dequeue(plans=plans)
            if not leased:
                break
            job = leased[0]
        if taker is not None:  # room for one more after this one
            taker.room = max_jobs is None or done + 1 < max_jobs
        await process_job(kernel, job)
        done += 1
    return done


async def drive(
    kernel: Kernel,
    clock: FakeClock,
    settings: MaintenanceSettings,
    run_id: str,
    *,
    max_rounds: int = 500,
    first: shortcuts.NextJob | None = None,
) -> RunRecord:
    """Tick, work and flush until the run ends, moving `clock` to the run's next due job or
    poll instead of sleeping. Uses only the ports, so it drives any adapter.

    `first`: the taker of the first round's `work`, holding the job the run's create
    handed it (`TestKernel.run`).

    Raises `RuntimeError` if the run makes no progress even after the stuck-run
    threshold passes (a bug worth a failing test).
    """
    idle_rounds = 0
    for _ in range(max_rounds):
        taker: shortcuts.NextJob | None = first
        if taker is not None:
            first = None
        elif current_taker() is None:
            taker = shortcuts.taker_of(kernel)
        with handing_off_to(taker) if taker is not None else nullcontext():
            if taker is not None:
                taker.room = shortcuts.claim_alone(kernel)
            await maintenance_tick(kernel, settings, idle=shortcuts.idle_steps(kernel, settings))
            worked = await _work(kernel, None, taker)
        await kernel.dispatch(_FLUSH)
        run = await kernel.deps.persistence.get_run(run_id)
        if run is None:
            raise RuntimeError(f"run {run_id} does not exist")
        if run.status in TERMINAL:
            return run
        if worked:
            idle_rounds = 0
            continue
        wake = await _next_wake(kernel, run_id)
        if wake is not None and wake > clock.now():
            clock.set(wake)
        else:
            idle_rounds += 1
            if idle_rounds > 3:
                raise RuntimeError(f"run {run_id} is stuck in {run.status.value}")
            clock.advance(settings.stuck_threshold + timedelta(seconds=1))
    raise RuntimeError(f"run {run_id} did not finish in {max_rounds} rounds")


async def _next_wake(kernel: Kernel, run_id: str) -> datetime | None:
    jobs = await kernel.deps.jobs.jobs_of_run(run_id)
    stages = await kernel.deps.persistence.stages_of_run(run_id)
    times = [j.run_at for j in jobs if j.status is Status.PENDING and j.run_at is not None]
    times += [
        s.next_poll_at
        for s in stages
        if s.status is Status.SUSPENDED and s.next_poll_at is not None
    ]
    return min(times, default=None)


def make_test_kernel(
    *workflows: Workflow,
    clock: FakeClock | None = None,
    plugins: Sequence[Plugin] = (),
    max_retries: int = 3,
    storage: Storage | None = None,
    ids_prefix: str = "id",
) -> TestKernel:
    """A kernel sharing one `FakeClock` with its ports, with `workflows` registered.

    Storage is in memory unless `storage` is given (its adapters must use the
    same `clock`). Events go to a `CollectingEventSink`, or through a
    `PluginRunner` when `plugins` are given.
    """
    clock = clock or FakeClock()
    ids = SequentialIds(ids_prefix)  # kernels sharing one storage need prefixes of their own
    if storage is None:
        storage = MemoryStorage(
            persistence=MemoryPersistence(clock),
            jobs=MemoryJobTransport(clock, worker_id="test-worker", ids=SequentialIds("job")),
            blobs=MemoryBlobStore(),
            ai_calls=MemoryAICallLogger(),
        )
    persistence, jobs, blobs = storage.persistence, storage.jobs, storage.blobs
    events: EventSink = (
        PluginRunner(plugins, max_retries=max_retries) if plugins else CollectingEventSink()
    )
    registry = WorkflowMap(workflows)
    scheduler = NoopScheduler()
    ai_calls = storage.ai_calls
    kernel = Kernel(
        persistence=persistence,
        blobs=blobs,
        jobs=jobs,
        events=events,
        clock=clock,
        ids=ids,
        registry=registry,
        scheduler=scheduler,
        ai_calls=ai_calls,
        pinning=storage.pinning,
        shared_transactions=storage.shared_transactions,
    )
    return TestKernel(
        kernel=kernel,
        clock=clock,
        persistence=persistence,
        jobs=jobs,
        blobs=blobs,
        events=events,
        ids=ids,
        registry=registry,
        scheduler=scheduler,
        ai_calls=ai_calls,
        settings=MaintenanceSettings(worker_id="test-worker"),
    )
