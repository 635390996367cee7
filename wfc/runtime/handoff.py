"""Handing the jobs a worker just queued straight to that worker's free slots.

When a worker finishes a stage, the transition it runs queues the next
group. Queued as PENDING, those jobs wake every idle worker (NOTIFY on
PostgreSQL) to race for them with a dequeue each, though the worker that
queued them is free to run them: measured with four workers, the race cost
4 ms of stage→stage latency and a tenth of the throughput. Inside
`handing_off_to(taker)`, a job transport queues up to `taker.free_slots()`
of the jobs that are due now already leased to its worker — RUNNING, attempt
1, locked now, exactly as a dequeue would leave them — and passes them to
`taker.take(jobs, more_queued=…)` — once the transaction they were queued in
has committed, if any; the rest are queued PENDING as usual. A worker that dies
before starting a handed job loses nothing: its lease is reaped like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from datetime import datetime
from typing import Protocol, cast

from wfc.runtime.job_records import JobRecord, JobSpec


class JobTaker(Protocol):
    """A worker that can run jobs it queued itself."""

    def free_slots(self) -> int:
        """How many more jobs it can start now."""
        ...

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        """Run these jobs, already leased to it (must not block); `more_queued`: others
        were queued PENDING alongside them, for whichever worker dequeues first."""
        ...

    def serves(self, queue: str) -> bool:
        """Whether it runs jobs of this queue."""
        ...


class RunTaker(JobTaker, Protocol):
    """A worker in this process that may be given the runs this process creates
    (`Kernel.offer_slots`): a create that finds it with a free slot claims in its own
    transaction, and hands the first stage to it (`kernel.claim.create_and_claim`)."""

    def room_for_a_run(self) -> bool:
        """Whether a run created now may be claimed for it: it is running, not stopping, has
        a free slot, and the caller is not one of its busy slots (a stage creating a run)."""
        ...

    @property
    def worker_id(self) -> str:
        """The worker the claimed run's jobs are leased to, as its own claims name it."""
        ...

    @property
    def run_id(self) -> str | None:
        """The one run it serves (`wfc run`), or None for any run of its plans."""
        ...

    @property
    def jobs_taken(self) -> int:
        """How many jobs were handed to it so far (`take`)."""
        ...

    def claimed_at_create(self, run_id: str, *, jobs_waiting: bool, others_pending: bool) -> None:
        """A create's transaction claimed `run_id` for it and has committed: `jobs_waiting`,
        some jobs it queued were not handed here (a dequeue will find them);
        `others_pending`, more runs it could claim were PENDING then."""
        ...


class NextRunTaker(RunTaker, Protocol):
    """A worker whose slot, freed by an outcome that ends its run, may be given the next
    PENDING run in that outcome's transaction (`kernel.claim.claim_for`, from `execute.py`)."""

    def room_for_next_run(self) -> bool:
        """Whether the calling slot, about to be freed with nothing handed to it, may claim
        a run in its outcome's transaction: runs were left PENDING for want of room, the
        worker is not stopping, and it serves any run of its plans."""
        ...

    def claimed_at_outcome(
        self, run_id: str | None, *, jobs_waiting: bool, others_pending: bool
    ) -> None:
        """The outcome's transaction, with its claim, has committed: `run_id` was started
        for this worker (None: nothing was); the rest as for `claimed_at_create`."""
        ...


_TAKER: ContextVar[JobTaker | None] = ContextVar("wfc_job_taker", default=None)


def handing_off_to(taker: JobTaker) -> AbstractContextManager[None]:
    """Jobs queued by this task (and tasks it starts) inside the block may go to `taker`."""
    return _HandingOff(taker)


class _HandingOff:
    """`handing_off_to`'s context. A class, not a `contextmanager`: a worker enters one per
    job it runs, and a generator each (made, started, finished) was a cost."""

    __slots__ = ("_taker", "_token")

    def __init__(self, taker: JobTaker) -> None:
        self._taker = taker

    def __enter__(self) -> None:
        self._token = _TAKER.set(self._taker)

    def __exit__(self, *_: object) -> None:
        _TAKER.reset(self._token)


def handing_off() -> bool:
    """Whether jobs queued here now may be handed to a taker."""
    return _TAKER.get() is not None


def current_taker() -> JobTaker | None:
    """The taker in charge here, if any (a finishing sibling hands it the next one:
    `kernel.sibling_hand_on`)."""
    return _TAKER.get()


def handed_specs(specs: Sequence[JobSpec]) -> tuple[JobTaker | None, set[int]]:
    """The taker in charge here, and the positions in `specs` to queue leased to it: the
    first jobs that are due now, unlimited and on a queue it serves, as many as it has
    free slots."""
    taker = _TAKER.get()
    if taker is None:
        return None, set()
    free = taker.free_slots()
    chosen: set[int] = set()
    for position, spec in enumerate(specs):
        if len(chosen) >= free:
            break
        # A limited job is leased only by a dequeue, which counts its limits.
        if spec.run_at is None and spec.limits is None and taker.serves(spec.queue):
            chosen.add(position)
    return taker, chosen


def next_run_taker() -> NextRunTaker | None:
    """The taker in charge here, if it has a slot for the next PENDING run now (a job's
    outcome is ending its run: `NextRunTaker.room_for_next_run`)."""
    taker = _TAKER.get()
    if getattr(taker, "room_for_next_run", None) is None:
        return None
    host = cast(NextRunTaker, taker)
    return host if host.room_for_next_run() else None


def due_later(when: datetime) -> None:
    """A job was queued here to become due at `when` (a sleep's or a signal timeout's
    timer): the taker in charge, if it watches for such jobs (`job_due_at`), looks for it
    then rather than at its next poll of the queue."""
    taker = _TAKER.get()
    watch: Callable[[datetime], None] | None = getattr(taker, "job_due_at", None)
    if watch is not None:
        watch(when)
