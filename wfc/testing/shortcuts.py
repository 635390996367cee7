"""What the test harness may skip or hand on when nothing can tell the difference.

`TestKernel.run`, `work` and `drive` run a kernel on the memory adapters one step at a
time; most of a step's work is there for a busy host (claims, polls, reaps,
announcements, dequeues). On the memory adapters the harness can ask cheaply whether
a step would do anything, and hand a job queued by a stage's transition straight to
the loop that would dequeue it next. Each shortcut here keeps the rows, jobs and
events, and their order, as the full step makes them (`tests/kernel` compares both);
only the ids drawn may differ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from wfc.runtime.adapters.memory import MemoryJobTransport, MemoryPersistence
from wfc.runtime.handoff import current_taker
from wfc.runtime.hosts.steps import MaintenanceSettings
from wfc.runtime.hosts.tick import reap_stale_command, reap_stuck_command
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel
from wfc.runtime.kernel.warm import WarmStarts
from wfc.runtime.workflow import Workflow


def taker_of(kernel: Kernel) -> NextJob | None:
    """A taker for `work`'s loop: only on the memory queue, which tells cheaply that no
    job waits."""
    jobs = kernel.deps.jobs
    if not isinstance(jobs, MemoryJobTransport):
        return None
    # The plans, sorted anew for each dequeue, were a cost: taken once per loop.
    return NextJob(jobs, kernel.deps.registry.plans(), kernel.deps.warm)


class NextJob:
    """`work`'s taker (`JobTaker`): one slot, free only while no other job waits, so a
    job handed to it is the job the next dequeue would have leased."""

    __slots__ = ("_handed", "_jobs", "_warm", "plans", "room")

    def __init__(self, jobs: MemoryJobTransport, plans: Sequence[str], warm: WarmStarts) -> None:
        self._jobs = jobs
        self.plans = plans
        self._warm = warm
        self._handed: list[JobRecord] = []
        self.room = False

    def free_slots(self) -> int:
        return 1 if self.room and not self._handed and self._jobs.idle() else 0

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        for job in jobs:
            if job.plan_fingerprint in self.plans:
                self._handed.append(job)
            else:  # a dequeue of this loop would not lease it: as if queued PENDING
                self._put_back(job)

    def serves(self, queue: str) -> bool:
        return True  # `work` dequeues from every queue

    def next(self) -> JobRecord | None:
        """The job handed to this loop, once; None (and the job put back in the queue) when
        jobs were queued after it, one of which a dequeue might lease first."""
        if not self._handed:
            return None
        job = self._handed.pop()
        if self._jobs.idle():
            return job
        self._put_back(job)
        return None

    def _put_back(self, job: JobRecord) -> None:
        """The job back in the queue as queued, and its warm start (if its stage started
        with the hand-off) dropped: it is delivered again at the same attempt."""
        self._jobs.unhand(job.id)
        self._warm.forget(job.run_id, job.stage_id, job.attempt)


class FirstRun(NextJob):
    """`TestKernel.run`'s taker for its create (a `RunTaker`): the create claims the run
    for it (`Kernel.create_for`), once, and hands it the first stage; it then serves as
    the first round's `work` taker, which runs that stage first."""

    __slots__ = ("_offered", "jobs_taken", "worker_id")

    run_id = None  # any run of the plans served: the one created, alone open

    def __init__(
        self, jobs: MemoryJobTransport, plans: Sequence[str], warm: WarmStarts, worker_id: str
    ) -> None:
        super().__init__(jobs, plans, warm)
        self.worker_id = worker_id
        self.jobs_taken = 0
        self._offered = True
        self.room = True

    def room_for_a_run(self) -> bool:
        offered, self._offered = self._offered, False
        return offered

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        self.jobs_taken += len(jobs)
        super().take(jobs, more_queued=more_queued)

    def claimed_at_create(self, run_id: str, *, jobs_waiting: bool, others_pending: bool) -> None:
        return None  # its stage, if handed, is run by the first round's `work`


def dispatch_wrapped(kernel: Kernel) -> bool:
    """Whether `kernel.dispatch` is not `Kernel.dispatch` (patched on the instance, or a
    subclass's own)."""
    return "dispatch" in vars(kernel) or type(kernel).dispatch is not Kernel.dispatch


def first_run_taker(kernel: Kernel, workflow_id: str, worker_id: str) -> FirstRun | None:
    """A taker for `TestKernel.run`'s create to claim its run for, when the claim of the
    first round would be made alone (`claim_alone`'s conditions, asked before the create:
    nothing open, queued, leased or suspended, and the workflow's first group one plain
    stage); None otherwise (and under a taker of the caller's own, and when the caller
    wrapped `kernel.dispatch`, to record commands or inject faults: it then sees the
    create and the first round's claim dispatched, as before)."""
    persistence, jobs = kernel.deps.persistence, kernel.deps.jobs
    if current_taker() is not None or dispatch_wrapped(kernel):
        return None
    if not isinstance(persistence, MemoryPersistence) or not isinstance(jobs, MemoryJobTransport):
        return None
    workflow = kernel.deps.registry.get(workflow_id)
    if workflow is None or not plain_first(workflow) or not jobs.quiet():
        return None
    if not persistence.nothing_open():
        return None
    return FirstRun(jobs, kernel.deps.registry.plans(), kernel.deps.warm, worker_id)


def claim_alone(kernel: Kernel) -> bool:
    """Whether the tick may hand the first job of the run it claims to `work`'s loop, as
    the later jobs are handed: only when nothing can tell the difference. On the memory
    adapters, that is when the run is the only open one, no job is queued or leased and
    nothing is suspended (no other run's event can come between its claim and its first
    stage's start, nor a poll), and its first group is one plain stage (no sibling to
    dequeue first, no timer or item to poll). Its stage then starts with the claim,
    saving a dequeue, a start transaction and the reads of the run, as for the later
    stages; its `stage:started` follows `workflow:started` as it would have. What does
    differ is the ids drawn: the job's start is not a transaction of its own, so a test
    kernel's sequential ids run one behind from there (as they already did for the
    later, handed stages). Ids are unique, not numbered by contract."""
    persistence, jobs = kernel.deps.persistence, kernel.deps.jobs
    if not isinstance(persistence, MemoryPersistence) or not isinstance(jobs, MemoryJobTransport):
        return False
    run = persistence.lone_pending_run() if jobs.quiet() else None
    workflow = None if run is None else kernel.deps.registry.get(run.workflow_id)
    if run is None or workflow is None or workflow.plan.fingerprint != run.plan_fingerprint:
        return False
    return plain_first(workflow)


def plain_first(workflow: Workflow) -> bool:
    """Whether the workflow's first group is one plain stage: not built in, mapped or a
    child run (no sibling to dequeue first, no timer or item for a poll)."""
    first = workflow.group(1)
    stage = workflow.stage(first[0]) if len(first) == 1 else None
    return stage is not None and not stage.builtin and stage.map is None and stage.child is None


def idle_steps(kernel: Kernel, settings: MaintenanceSettings) -> Callable[[str], bool] | None:
    """On the memory adapters, which maintenance steps would do nothing now (`idle` of
    `maintenance_tick`): no PENDING run to claim, no suspended stage to poll, no stale
    lease, no run idle long enough to be stuck, no open run of another plan to adopt, no
    announcement that would change the worker's record. Each asks what the step's own
    query asks, with the step's own threshold; the flush and pruning always run."""
    persistence, jobs, clock = kernel.deps.persistence, kernel.deps.jobs, kernel.deps.clock
    if not isinstance(persistence, MemoryPersistence) or not isinstance(jobs, MemoryJobTransport):
        return None
    stale, stuck = _thresholds(settings)
    plans = kernel.deps.registry.plans()

    def idle(step: str) -> bool:
        if step == "claim":
            return persistence.nothing_pending()
        if step == "poll":
            return persistence.nothing_suspended()
        if step == "reap_stale":
            return not jobs.leased_before(clock.now() - stale)
        if step == "reap_stuck":
            return persistence.none_idle_since(clock.now() - stuck)
        if step == "adopt":
            return persistence.all_open_on(plans)
        if step == "announce":
            return announced(kernel, persistence, settings, plans)
        return False

    return idle


_last_thresholds: tuple[MaintenanceSettings, timedelta, timedelta] | None = None


def _thresholds(settings: MaintenanceSettings) -> tuple[timedelta, timedelta]:
    """The stale-lease and stuck-run thresholds of the tick's own commands, as `idle` asks
    them, kept for the last settings seen (by identity: they are frozen): the commands are
    cached by the settings' hash, a tuple of all their fields hashed on every ask, and a
    test kernel ticks every round of every run with the same settings."""
    global _last_thresholds
    last = _last_thresholds
    if last is not None and last[0] is settings:
        return last[1], last[2]
    stale = timedelta(milliseconds=reap_stale_command(settings).stale_threshold_ms)
    stuck = timedelta(milliseconds=reap_stuck_command(settings).stuck_threshold_ms)
    _last_thresholds = (settings, stale, stuck)
    return stale, stuck


def announced(
    kernel: Kernel, persistence: MemoryPersistence, settings: MaintenanceSettings, plans: list[str]
) -> bool:
    """Whether the tick's announcement would write nothing new: the worker's record is
    stored as it would write it (a fake clock that has not moved since the last tick: the
    same `seen_at` and `expires_at`, the same plans and queues, `started_at` kept), and
    every plan served is stored already. A host serving one run announces nothing."""
    if settings.run_id is not None:
        return True
    known = persistence.worker(settings.worker_id)
    if known is None:
        return False
    if not kernel.deps.recorded_plans.issuperset(plans):
        return False
    now = kernel.deps.clock.now()
    return (
        known.seen_at == now
        and known.expires_at == now + settings.presence_ttl
        and known.plans == plans
        and known.queues == list(settings.queues)
    )
