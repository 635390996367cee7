"""`JobTransport` in memory: a priority queue of job records with leases.

The queue keeps every job it was given (a test inspects them afterwards), so
what a dequeue or a lease reap looks at must not be all of them: indexes of
the PENDING and RUNNING jobs, and of each run's jobs, are kept in step by the
one place a job is written (`_put`), and the calls read those.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from wfc.errors import RecordNotFoundError
from wfc.runtime.adapters.memory.clock import SystemClock, UuidIds
from wfc.runtime.copies import changed
from wfc.runtime.handoff import handed_specs
from wfc.runtime.job_records import JobLimits, JobRecord, JobSpec, LimitUsage
from wfc.runtime.limits import limit_columns, with_overrides
from wfc.runtime.ports import Clock, IdSource
from wfc.runtime.record_builders import builder
from wfc.runtime.records import Status

_NEW_JOB = builder(JobRecord)  # a record per job queued, without a class call


class MemoryJobTransport:
    """Jobs in a dict; dequeue order is priority (high first), then age, then insertion.

    `worker_id` is written into the jobs this queue leases.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        worker_id: str = "memory-worker",
        ids: IdSource | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._ids = ids or UuidIds()
        self.worker_id = worker_id
        self._jobs: dict[str, JobRecord] = {}
        self._order: dict[str, int] = {}
        # Dicts used as ordered sets of job ids, by status and by run.
        self._pending: dict[str, None] = {}
        self._running: dict[str, None] = {}
        self._of_run: dict[str, dict[str, None]] = {}
        self._counter = itertools.count()
        self._rate_starts: dict[str, list[datetime]] = {}  # per rate key, within its window
        self._overrides: dict[str, int] = {}  # bounds set by operators, per limit key

    async def enqueue(self, jobs: Sequence[JobSpec], *, completing: str | None = None) -> list[str]:
        if completing is not None and completing in self._jobs:
            await self.complete(completing)
        now = self._clock.now()
        taker, handed = handed_specs(jobs)
        ids = []
        taken = []
        for position, spec in enumerate(jobs):
            leased = position in handed  # queued leased to the taker, as a dequeue leaves it
            job = _NEW_JOB(
                id=self._ids.new_id(),
                run_id=spec.run_id,
                workflow_id=spec.workflow_id,
                stage_id=spec.stage_id,
                status=Status.RUNNING if leased else Status.PENDING,
                priority=spec.priority,
                attempt=spec.attempts_made + 1 if leased else spec.attempts_made,
                max_attempts=spec.max_attempts,
                payload=dict(spec.payload),
                created_at=now,
                updated_at=now,
                run_at=spec.run_at,
                plan_fingerprint=spec.plan_fingerprint,
                queue=spec.queue,
                worker_id=self.worker_id if leased else None,
                locked_at=now if leased else None,
                started_at=now if leased else None,
            )  # an unlimited job's limit columns are their defaults, None
            if spec.limits is not None:
                job = changed(job, limit_columns(spec.limits))
            job_id = job.id
            # `_store` written out for a new job: every job queued passes here.
            self._jobs[job_id] = job
            self._order[job_id] = next(self._counter)
            self._of_run.setdefault(job.run_id, {})[job_id] = None
            if leased:
                taken.append(job)
                self._running[job_id] = None
            else:
                self._pending[job_id] = None
            ids.append(job_id)
        if taker is not None:
            taker.take(taken, more_queued=len(taken) < len(jobs))
        return ids

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
        if completing is not None and completing[0] in self._jobs:
            await self.complete(completing[0], attempt=completing[1])
        now = self._clock.now()
        if run_id is not None:
            candidates = [j for j in self._run_jobs(run_id) if j.status is Status.PENDING]
        else:
            candidates = [self._jobs[job_id] for job_id in self._pending]
        due = [
            j
            for j in candidates
            if (j.run_at is None or j.run_at <= now)
            and (run_id is None or j.run_id == run_id)
            and (plans is None or j.plan_fingerprint in plans)
            and (queues is None or j.queue in queues)
        ]
        order = self._order
        due.sort(key=lambda j: (-j.priority, j.created_at, order[j.id]))
        # The unlimited first, in that order, then the limited that their limits admit.
        leased: list[JobRecord] = []
        limited_due: list[JobRecord] = []
        for job in due:
            if job.concurrency_key is None and job.rate_key is None:  # `job.limits` is None
                if len(leased) < limit:
                    leased.append(self._lease(job, now))
            elif limited:
                limited_due.append(job)
        for job in limited_due:  # each leased at once: the next one counts it
            limits = job.limits
            if len(leased) < limit and limits is not None and self._admits(limits, now):
                leased.append(self._lease(job, now))
        return leased

    def _lease(self, job: JobRecord, now: datetime) -> JobRecord:
        # `_put` written out (its keywords packed and merged again): every job leased.
        changes = {
            "status": Status.RUNNING,
            "worker_id": self.worker_id,
            "locked_at": now,
            "started_at": now,
            "attempt": job.attempt + 1,
            "updated_at": self._clock.now(),
        }
        leased: JobRecord = changed(job, changes)
        self._store(leased, job)
        return leased

    def _admits(self, limits: JobLimits, now: datetime) -> bool:
        """Whether a job under `limits` may start now; if so, its start is counted."""
        if self._usage(limits, now).full:
            return False
        if limits.rate_key is not None:
            self._rate_starts[limits.rate_key] = [*self._starts(limits, now), now]
        return True

    async def limit_usage(self, limits: JobLimits) -> LimitUsage:
        return self._usage(limits, self._clock.now())

    async def active_limits(self) -> list[JobLimits]:
        found = {job.limits for job in self._open_jobs() if job.limits is not None}
        return sorted(found, key=lambda limits: limits.keys())

    async def limit_overrides(self) -> dict[str, int]:
        return dict(self._overrides)

    async def set_limit_override(self, key: str, bound: int | None) -> None:
        if bound is None:
            self._overrides.pop(key, None)
        else:
            self._overrides[key] = bound

    def _usage(self, limits: JobLimits, now: datetime) -> LimitUsage:
        limits = with_overrides(limits, self._overrides)
        running = None
        if limits.concurrency_key is not None:
            running = sum(
                1
                for job_id in self._running
                if self._jobs[job_id].concurrency_key == limits.concurrency_key
            )
        started = None if limits.rate_key is None else len(self._starts(limits, now))
        return LimitUsage(
            running=running,
            concurrency_max=limits.concurrency_max,
            started=started,
            rate_max=limits.rate_max,
        )

    def _starts(self, limits: JobLimits, now: datetime) -> list[datetime]:
        """The leases under the rate key within its window before `now`."""
        since = now - timedelta(milliseconds=limits.rate_window_ms or 0)
        return [at for at in self._rate_starts.get(limits.rate_key or "", []) if at > since]

    def idle(self) -> bool:
        """Whether no job waits PENDING (due or not): a job queued now would be the next
        one any dequeue leases."""
        return not self._pending

    def unhand(self, job_id: str) -> None:
        """Put a job a hand-off leased back as it would have been queued (PENDING at the
        attempt it was queued with), for a taker that turns out not to run it."""
        job = self._get(job_id)
        if job.status is Status.RUNNING:
            self._put(
                job,
                status=Status.PENDING,
                attempt=job.attempt - 1,
                worker_id=None,
                locked_at=None,
                started_at=None,
            )

    async def complete(self, job_id: str, *, attempt: int | None = None) -> None:
        job = self._get(job_id)
        if _held(job, attempt):  # `_put` written out: every job ends here
            completed_at = self._clock.now()
            changes = {"status": Status.COMPLETED, "completed_at": completed_at}
            changes["updated_at"] = self._clock.now()
            self._store(changed(job, changes), job)

    async def suspend(
        self, job_id: str, next_poll_at: datetime, *, attempt: int | None = None
    ) -> None:
        job = self._get(job_id)
        if _held(job, attempt):
            self._put(
                job, status=Status.SUSPENDED, run_at=next_poll_at, worker_id=None, locked_at=None
            )

    async def fail(
        self, job_id: str, error: str, *, retry_at: datetime | None, attempt: int | None = None
    ) -> bool:
        job = self._get(job_id)
        if not _held(job, attempt):
            return False
        if retry_at is not None and job.attempt < job.max_attempts:
            self._put(
                job,
                status=Status.PENDING,
                last_error=error,
                run_at=retry_at,
                worker_id=None,
                locked_at=None,
            )
            return True
        self._put(job, status=Status.FAILED, last_error=error, completed_at=self._clock.now())
        return False

    async def release(self, job_id: str, *, attempt: int | None = None) -> None:
        job = self._get(job_id)
        if job.status is Status.RUNNING and (attempt is None or job.attempt == attempt):
            self._put(job, status=Status.PENDING, worker_id=None, locked_at=None)

    async def touch(self, job_id: str, *, attempt: int | None = None) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.status is not Status.RUNNING or not _held(job, attempt):
            return False
        self._put(job, locked_at=self._clock.now())
        return True

    def quiet(self) -> bool:
        """Whether no job waits PENDING and none is leased."""
        return not self._pending and not self._running

    def leased_before(self, cutoff: datetime) -> bool:
        """Whether a RUNNING job was locked before `cutoff`: what `release_stale(cutoff)`
        would release (asked by the test harness before a tick's lease reaping)."""
        jobs = self._jobs
        for job_id in self._running:  # a loop, not `any` over a generator: asked every round
            locked = jobs[job_id].locked_at
            if locked is not None and locked < cutoff:
                return True
        return False

    async def release_stale(self, locked_before: datetime) -> int:
        stale = [
            j
            for j in (self._jobs[job_id] for job_id in self._running)
            if j.locked_at is not None and j.locked_at < locked_before
        ]
        for job in stale:
            self._put(job, status=Status.PENDING, worker_id=None, locked_at=None)
        return len(stale)

    async def cancel_by_run(self, run_id: str) -> int:
        open_jobs = [
            j for j in self._run_jobs(run_id) if j.status in (Status.PENDING, Status.SUSPENDED)
        ]
        now = self._clock.now()
        for job in open_jobs:
            self._put(job, status=Status.CANCELLED, completed_at=now)
        return len(open_jobs)

    async def repoint(self, run_id: str, plan: str) -> bool:
        mine = self._run_jobs(run_id)
        if any(job.status is Status.RUNNING for job in mine):
            return False
        for job in mine:
            if job.status in (Status.PENDING, Status.SUSPENDED):
                self._put(job, plan_fingerprint=plan)
        return True

    async def delete_jobs(self, run_ids: Sequence[str]) -> int:
        doomed = [job_id for run_id in set(run_ids) for job_id in self._of_run.pop(run_id, {})]
        for job_id in doomed:
            del self._jobs[job_id]
            self._pending.pop(job_id, None)
            self._running.pop(job_id, None)
        return len(doomed)

    async def jobs_of_run(self, run_id: str) -> list[JobRecord]:
        return self._run_jobs(run_id)

    def _run_jobs(self, run_id: str) -> list[JobRecord]:
        """The run's jobs, in enqueue order."""
        return [self._jobs[job_id] for job_id in self._of_run.get(run_id, ())]

    def _open_jobs(self) -> list[JobRecord]:
        return [self._jobs[job_id] for job_id in (*self._pending, *self._running)]

    # -- inspection and test control -------------------------------------
    def has_pending(self) -> bool:
        """Whether any job is PENDING, due or not (read from the index, in O(1))."""
        return bool(self._pending)

    def all_jobs(self) -> list[JobRecord]:
        """Every job, in enqueue order."""
        return list(self._jobs.values())

    def job(self, job_id: str) -> JobRecord:
        """One job; `RecordNotFoundError` when unknown."""
        return self._get(job_id)

    def jobs_with_status(self, status: Status) -> list[JobRecord]:
        """Jobs in one status, in enqueue order."""
        return [j for j in self._jobs.values() if j.status is status]

    def set_locked_at(self, job_id: str, at: datetime) -> None:
        """Backdate a lease (to make it look stale)."""
        self._put(self._get(job_id), locked_at=at)

    def clear(self) -> None:
        """Forget every job."""
        for index in (self._jobs, self._order, self._pending, self._running, self._of_run):
            index.clear()

    def _get(self, job_id: str) -> JobRecord:
        job = self._jobs.get(job_id)
        if job is None:
            raise RecordNotFoundError("Job", job_id)
        return job

    def _put(self, job: JobRecord, **changes: object) -> JobRecord:
        updated = changed(job, {**changes, "updated_at": self._clock.now()})
        self._store(updated, job)
        return updated

    def _store(self, job: JobRecord, old: JobRecord | None) -> None:
        """Write `job` over `old` (None: a new job), moving it between the status indexes."""
        self._jobs[job.id] = job
        if old is None:
            self._of_run.setdefault(job.run_id, {})[job.id] = None
        elif old.status is job.status:
            return
        # Each job write passes here: the two indexes written out, not looped over.
        status, job_id = job.status, job.id
        if status is Status.PENDING:
            self._pending[job_id] = None
        else:
            self._pending.pop(job_id, None)
        if status is Status.RUNNING:
            self._running[job_id] = None
        else:
            self._running.pop(job_id, None)


def _held(job: JobRecord, attempt: int | None) -> bool:
    """Whether a write fenced on `attempt` may change `job` (`JobTransport`'s fence)."""
    return attempt is None or (
        job.attempt == attempt and job.status in (Status.RUNNING, Status.PENDING)
    )
