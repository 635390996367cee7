"""The job queue's port: what workers take stage executions from.

One of the ports (`wfc.runtime.ports`), in a module of its own with `Persistence`'s
(`persistence_port`), which hands items on through it; `ports` offers both with the
others.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from wfc.runtime.job_records import JobLimits, JobRecord, JobSpec, LimitUsage


class JobTransport(Protocol):
    """The job queue workers take stage executions from."""

    async def enqueue(self, jobs: Sequence[JobSpec], *, completing: str | None = None) -> list[str]:
        """Queue all of `jobs` atomically; their ids in order. With `completing`, that job
        (if it exists) is marked done in the same write: the job of a stage whose
        outcome queued these, handing its slot on (one statement where it can be)."""
        ...

    async def dequeue(
        self,
        limit: int = 1,
        *,
        run_id: str | None = None,
        plans: Sequence[str] | None = None,
        queues: Sequence[str] | None = None,
        limited: bool = True,
        completing: tuple[str, int] | None = None,
    ) -> list[JobRecord]:
        """Lease up to `limit` due PENDING jobs (priority first, then age); attempt +1 each.
        With `run_id`, only that run's jobs; with `plans`, only jobs whose run was created
        with one of these plan fingerprints (the plans the worker serves); with `queues`,
        only jobs on one of these queues. A job under limits (`JobLimits`) is leased only
        while they have room, counted across everyone sharing the queue's storage: at most
        `concurrency_max` RUNNING jobs per concurrency key, at most `rate_max` leases per
        rate key within any `rate_window_ms`. Unlimited jobs are leased first; with
        `limited=False` (the caller serves no stage under a limit), only they are looked for.
        With `completing` (a job's id and the attempt its caller holds), that job is marked
        done in the same write, while it is still at that delivery (`complete(attempt=)`):
        a finishing stage hands its slot on in one statement where it sent two."""
        ...

    # `attempt` on the writes below fences them: given, the write lands only while the job
    # is still at that delivery (RUNNING, or PENDING when its lease was reaped but nobody
    # took it since); a worker whose lease was taken over changes nothing with it.

    async def complete(self, job_id: str, *, attempt: int | None = None) -> None:
        """Mark a job done (`RecordNotFoundError` when there is no such job)."""

    async def suspend(
        self, job_id: str, next_poll_at: datetime, *, attempt: int | None = None
    ) -> None:
        """Park a job whose stage suspended; it is no longer dequeued."""

    async def fail(
        self, job_id: str, error: str, *, retry_at: datetime | None, attempt: int | None = None
    ) -> bool:
        """Record a failure: back to PENDING until `retry_at` if given and attempts remain,
        else FAILED. Returns whether it will be retried."""
        ...

    async def release(self, job_id: str, *, attempt: int | None = None) -> None:
        """Hand a leased job back untouched (a worker shutting down); attempt unchanged.
        With `attempt`, only while still RUNNING at it: a lease reaped and taken by another
        worker meanwhile is that worker's, and handing it back would run the stage twice."""

    async def touch(self, job_id: str, *, attempt: int | None = None) -> bool:
        """Renew a RUNNING job's lease (heartbeat), at `attempt` when given; whether it was
        renewed (False: the lease was lost, the execution's result will be a ghost)."""
        ...

    async def release_stale(self, locked_before: datetime) -> int:
        """Return RUNNING jobs leased before `locked_before` to PENDING; how many."""
        ...

    async def cancel_by_run(self, run_id: str) -> int:
        """Cancel the run's PENDING and SUSPENDED jobs (RUNNING ones are left); how many."""
        ...

    async def repoint(self, run_id: str, plan: str) -> bool:
        """Give the run's queued and parked jobs to the workers of `plan` (the run was
        adopted by it). False, changing nothing, while a job of the run is RUNNING: a
        stage is executing on its old plan's worker."""
        ...

    async def delete_jobs(self, run_ids: Sequence[str]) -> int:
        """Delete every job of these runs (pruned ones); how many."""
        ...

    async def jobs_of_run(self, run_id: str) -> list[JobRecord]:
        """Every job of the run, any status."""
        ...

    async def limit_usage(self, limits: JobLimits) -> LimitUsage:
        """How full `limits` are now: jobs RUNNING under the concurrency key, leases under
        the rate key within its window (what `wfc runs show` says a waiting stage waits for),
        with the bounds in force."""
        ...

    async def active_limits(self) -> list[JobLimits]:
        """The distinct limits of PENDING and RUNNING jobs (`wfc limits list`)."""
        ...

    async def limit_overrides(self) -> dict[str, int]:
        """The bounds operators set per limit key, in place of the plans'."""
        ...

    async def set_limit_override(self, key: str, bound: int | None) -> None:
        """Make `bound` the limit of `key` for every job under it, leased from now on,
        whatever its plan says (None: the plan's bound again)."""
        ...
