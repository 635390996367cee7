"""`JobTransport` on SQL: one-statement leasing that several processes can race on safely.

PostgreSQL picks due jobs with `FOR UPDATE SKIP LOCKED` inside the
`UPDATE … RETURNING` that leases them, so concurrent workers never wait on or
take the same job. On SQLite the same statement takes the file's write lock
when it starts, which serialises writers. Each one-statement operation runs
in autocommit: no BEGIN/COMMIT round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from wfc.errors import RecordNotFoundError
from wfc.runtime.adapters.memory.clock import SystemClock, UuidIds
from wfc.runtime.adapters.sql import direct, limited
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.limited import Shape, lease_limited, limit_usage
from wfc.runtime.adapters.sql.rows import built_once, one_of, one_of_params, to_record
from wfc.runtime.adapters.sql.runs import plan_among, plan_params
from wfc.runtime.adapters.sql.schema import jobs, status_is
from wfc.runtime.handoff import JobTaker, handed_specs
from wfc.runtime.job_records import JobLimits, JobRecord, JobSpec, LimitUsage
from wfc.runtime.limits import limit_columns
from wfc.runtime.ports import Clock, IdSource
from wfc.runtime.records import Status

_j = jobs.c


# The statements of every stage execution, built once (building one costs more CPU
# than running it on a local server).
def _lease(*only: ColumnElement[bool]) -> Any:
    """Lease the best due PENDING jobs (that also meet `only`)."""
    due = (
        select(_j.id)
        .where(
            status_is(jobs, Status.PENDING.value),
            or_(_j.run_at.is_(None), _j.run_at <= bindparam("now")),
            *only,
        )
        .order_by(_j.priority.desc(), _j.position)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
        # A CTE runs once; `id IN (subquery … LIMIT n)` may be re-planned into a join that
        # leases more than `n` rows on PostgreSQL.
        .cte("due")
    )
    return (
        update(jobs)
        .where(_j.id == due.c.id, status_is(jobs, Status.PENDING.value))
        .values(
            status=Status.RUNNING.value,
            worker_id=bindparam("worker_id"),
            locked_at=bindparam("now"),
            started_at=bindparam("now"),
            attempt=_j.attempt + 1,
            updated_at=bindparam("now"),
        )
        .returning(*jobs.c)
    )


_UNLIMITED = (_j.concurrency_key.is_(None), _j.rate_key.is_(None))
_LEASE = _lease(*_UNLIMITED)
_LEASE_OF_RUN = _lease(*_UNLIMITED, _j.run_id == bindparam("only_run_id"))  # one run's host


def _served(shape: Shape) -> list[ColumnElement[bool]]:
    """The conditions of a dequeue of this shape: the run, plans and queues it serves."""
    of_run, plans, queues = shape
    only = []
    if plans is not None:
        only.append(plan_among(_j.plan_fingerprint, plans))
    if queues is not None:
        only.append(one_of(_j.queue, "queue", queues))
    if of_run:
        only.append(_j.run_id == bindparam("only_run_id"))
    return only


def _lease_served(shape: Shape) -> Any:
    """`_lease` of the unlimited jobs a dequeue of this shape serves."""
    return _lease(*_UNLIMITED, *_served(shape))


def _lease_completing(shape: Shape) -> Any:
    """`_lease_served`, with the job bound as `completing` marked done by the same statement
    while it is at `held_attempt` (PostgreSQL: a data-modifying CTE runs whether or not the
    UPDATE reads it). The two must write different rows of `jobs`: the completed job is
    leased, except when its lease was reaped and nobody took it yet (PENDING at its
    attempt, which the fence accepts), so the lease leaves that job out by its id; else
    both parts would pick it and the completion, second, would be dropped silently."""
    completion = _completion("completing", "now", fenced=True).cte("completing_on")
    not_completing = _j.id != bindparam("completing")
    return _lease(*_UNLIMITED, *_served(shape), not_completing).add_cte(completion)


def _fenced_statuses() -> ColumnElement[bool]:
    """The statuses a job fenced on its attempt may be written in (see `_held`); not an
    `IN` list, which `direct` cannot send as compiled."""
    return or_(_j.status == Status.RUNNING.value, _j.status == Status.PENDING.value)


def _held() -> ColumnElement[bool]:
    """The fence of a write by the job's lease holder: the job is still at the delivery
    bound as `held_attempt` (RUNNING, or PENDING if its lease was reaped and nobody took it)."""
    return and_(_j.attempt == bindparam("held_attempt"), _fenced_statuses())


def _completion(job_id: str, now: str, *, fenced: bool = False) -> Any:
    """Mark the job whose id is bound as `job_id` done at the instant bound as `now`
    (`fenced`: only while it is at the delivery bound as `held_attempt`)."""
    return (
        update(jobs)
        .where(_j.id == bindparam(job_id), *([_held()] if fenced else []))
        .values(
            status=Status.COMPLETED.value,
            completed_at=bindparam(now),
            updated_at=bindparam(now),
        )
    )


_COMPLETE = _completion("job_id", "now")
_COMPLETE_FENCED = _completion("job_id", "now", fenced=True)
_COMPLETE_RETURNING = _COMPLETE.returning(jobs.c.id)  # counted by a predicted commit
_COMPLETE_FENCED_RETURNING = _COMPLETE_FENCED.returning(jobs.c.id)
_INSERT = insert(jobs)
# PostgreSQL: the job whose stage queued these completed by the same statement (a
# data-modifying CTE runs whether or not the INSERT reads it).
_HANDING_ON = _completion("completing", "completed_now").cte("handing_on")
_INSERT_COMPLETING = _INSERT.add_cte(_HANDING_ON)
# The columns of a new job that `enqueue` does not set: a handed job's record is built
# from the row it inserts, not read back.
_UNSET = {"completed_at": None, "last_error": None}
# The statuses of a new job's row, read once: `Status.X.value` is a property written in
# Python (about 1,300 instructions a read), and every job queued read one or two.
_PENDING, _RUNNING = Status.PENDING.value, Status.RUNNING.value


class SqlJobTransport:
    """The job queue in the `jobs` table; `worker_id` is written into the jobs it leases."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        worker_id: str = "worker",
        ids: IdSource | None = None,
    ) -> None:
        self.engine = engine
        self._connections = Connections(engine)
        self._clock = clock or SystemClock()
        self._ids = ids or UuidIds()
        self.worker_id = worker_id

    async def enqueue(
        self, specs: Sequence[JobSpec], *, completing: str | None = None
    ) -> list[str]:
        if not specs:
            if completing is not None:
                await self._complete_if_there(completing)
            return []
        taker, handed = handed_specs(specs)
        now = self._clock.now()
        ids = [self._ids.new_id() for _ in specs]
        rows = [
            self.new_row(job_id, s, now, leased=position in handed)
            for position, (job_id, s) in enumerate(zip(ids, specs, strict=True))
        ]
        # One statement for all rows, and on asyncpg for the job `completing` too: atomic
        # on its own, so no transaction round trips; inside a transaction it may travel
        # with the transaction's next statement (`direct.defer_rows`).
        async with self._connections.single() as conn:
            if completing is not None and not direct.on_driver(conn):
                await self._complete_if_there(completing)
                completing = None
            if completing is None:
                statement, extra = _INSERT, {}
            else:
                statement = _INSERT_COMPLETING
                extra = {"completing": completing, "completed_now": now}
            await direct.defer_rows(conn, statement, rows, extra)
        if taker is not None:
            leased = [to_record(JobRecord, rows[position] | _UNSET) for position in sorted(handed)]
            more_queued = len(handed) < len(specs)
            # Queued inside a transaction, the jobs may start only once it has committed.
            self._connections.after_commit(lambda: taker.take(leased, more_queued=more_queued))
        return ids

    def new_row(self, job_id: str, s: JobSpec, now: datetime, *, leased: bool) -> dict[str, Any]:
        """The row `enqueue` inserts for `s`: PENDING, or `leased` to this worker."""
        return {
            "id": job_id,
            "run_id": s.run_id,
            "workflow_id": s.workflow_id,
            "stage_id": s.stage_id,
            "status": _PENDING,
            "priority": s.priority,
            "attempt": s.attempts_made,
            "max_attempts": s.max_attempts,
            "payload": s.payload,
            "created_at": now,
            "updated_at": now,
            "run_at": s.run_at,
            "worker_id": None,
            "locked_at": None,
            "started_at": None,
            "plan_fingerprint": s.plan_fingerprint,
            "queue": s.queue,
            **limit_columns(s.limits),
        } | (self._leased(now, s.attempts_made) if leased else {})

    @staticmethod
    def handed(row: dict[str, Any], taker: JobTaker) -> None:
        """Pass the job of `row`, inserted leased and committed, to `taker` to run."""
        taker.take([to_record(JobRecord, row | _UNSET)], more_queued=False)

    def _leased(self, now: datetime, attempts_made: int) -> dict[str, Any]:
        """The columns of a job leased to this worker, as `dequeue` leaves them."""
        return {
            "status": _RUNNING,
            "attempt": attempts_made + 1,
            "worker_id": self.worker_id,
            "locked_at": now,
            "started_at": now,
        }

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
        if (plans is not None and not plans) or (queues is not None and not queues):
            if completing is not None:
                await self._complete_if_there(*completing)
            return []  # a worker serving no plan (or queue) takes nothing
        params: dict[str, Any] = {
            "now": self._clock.now(),
            "limit": limit,
            "worker_id": self.worker_id,
        }
        shape: Shape = (
            run_id is not None,
            None if plans is None else len(plans),
            None if queues is None else len(queues),
        )
        params |= plan_params(plans or ()) | one_of_params("queue", queues or ())
        if run_id is not None:
            params["only_run_id"] = run_id
        sent = params
        async with self._connections.single() as conn:
            if completing is not None and not direct.on_driver(conn):
                await self._complete_if_there(*completing)  # SQLite: no data-modifying CTE
                completing = None
            if completing is not None:
                statement = built_once(("lease+", shape), partial(_lease_completing, shape))
                sent = params | {"completing": completing[0], "held_attempt": completing[1]}
            elif plans is None and queues is None:
                statement = _LEASE if run_id is None else _LEASE_OF_RUN
            else:
                statement = built_once(("lease", shape), partial(_lease_served, shape))
            rows = sorted(
                await direct.fetch(conn, statement, sent),
                key=lambda r: (-r["priority"], r["position"]),
            )
        leased = [to_record(JobRecord, row) for row in rows]
        if limited and len(leased) < limit:
            leased += await lease_limited(
                self._connections,
                _served(shape),
                params | {"limit": limit - len(leased)},
                _lease,
            )
        return leased

    async def complete(self, job_id: str, *, attempt: int | None = None) -> None:
        params = {"job_id": job_id, "now": self._clock.now(), "held_attempt": attempt}
        async with self._connections.single() as conn:
            if direct.predicting(conn):  # the transaction's one statement fails without it
                counted = _COMPLETE_RETURNING if attempt is None else _COMPLETE_FENCED_RETURNING
                await direct.defer(conn, counted, params, expect_row=True)
                return
        if not await self._complete_if_there(job_id, attempt):
            if attempt is None or not await self._exists(job_id):
                raise RecordNotFoundError("Job", job_id)

    async def _complete_if_there(self, job_id: str, attempt: int | None = None) -> bool:
        """Mark the job done (if still at `attempt`, when given); whether it was."""
        statement = _COMPLETE if attempt is None else _COMPLETE_FENCED
        params = {"job_id": job_id, "now": self._clock.now(), "held_attempt": attempt}
        async with self._connections.single() as conn:
            done = await direct.execute(conn, statement, params)
        return done > 0

    async def _exists(self, job_id: str) -> bool:
        async with self._connections.single() as conn:
            found = await conn.execute(select(_j.id).where(_j.id == job_id))
            return found.first() is not None

    async def suspend(
        self, job_id: str, next_poll_at: datetime, *, attempt: int | None = None
    ) -> None:
        await self._update(
            job_id,
            attempt,
            status=Status.SUSPENDED.value,
            run_at=next_poll_at,
            worker_id=None,
            locked_at=None,
        )

    async def fail(
        self, job_id: str, error: str, *, retry_at: datetime | None, attempt: int | None = None
    ) -> bool:
        now = self._clock.now()
        fence = [] if attempt is None else [_j.attempt == attempt, _fenced_statuses()]
        async with self._connections.transaction() as conn:
            if retry_at is not None:
                retried = await conn.execute(
                    update(jobs)
                    .where(_j.id == job_id, _j.attempt < _j.max_attempts, *fence)
                    .values(
                        status=Status.PENDING.value,
                        last_error=error,
                        run_at=retry_at,
                        worker_id=None,
                        locked_at=None,
                        updated_at=now,
                    )
                )
                if retried.rowcount == 1:
                    return True
            failed = await conn.execute(
                update(jobs)
                .where(_j.id == job_id, *fence)
                .values(
                    status=Status.FAILED.value, last_error=error, completed_at=now, updated_at=now
                )
            )
        if failed.rowcount == 0 and (attempt is None or not await self._exists(job_id)):
            raise RecordNotFoundError("Job", job_id)
        return False

    async def release(self, job_id: str, *, attempt: int | None = None) -> None:
        fence = [] if attempt is None else [_j.attempt == attempt]
        async with self._connections.single() as conn:
            await conn.execute(
                update(jobs)
                .where(_j.id == job_id, _j.status == Status.RUNNING.value, *fence)
                .values(
                    status=Status.PENDING.value,
                    worker_id=None,
                    locked_at=None,
                    updated_at=self._clock.now(),
                )
            )

    async def touch(self, job_id: str, *, attempt: int | None = None) -> bool:
        now = self._clock.now()
        fence = [] if attempt is None else [_j.attempt == attempt]
        async with self._connections.single() as conn:
            touched = await conn.execute(
                update(jobs)
                .where(_j.id == job_id, _j.status == Status.RUNNING.value, *fence)
                .values(locked_at=now, updated_at=now)
            )
        return bool(touched.rowcount)

    async def release_stale(self, locked_before: datetime) -> int:
        async with self._connections.single() as conn:
            result = await conn.execute(
                update(jobs)
                .where(_j.status == Status.RUNNING.value, _j.locked_at < locked_before)
                .values(
                    status=Status.PENDING.value,
                    worker_id=None,
                    locked_at=None,
                    updated_at=self._clock.now(),
                )
            )
        return int(result.rowcount)

    async def cancel_by_run(self, run_id: str) -> int:
        now = self._clock.now()
        async with self._connections.single() as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    and_(
                        _j.run_id == run_id,
                        _j.status.in_([Status.PENDING.value, Status.SUSPENDED.value]),
                    )
                )
                .values(status=Status.CANCELLED.value, completed_at=now, updated_at=now)
            )
        return int(result.rowcount)

    async def repoint(self, run_id: str, plan: str) -> bool:
        """One statement: the run's PENDING and SUSPENDED jobs moved to `plan` unless one
        of its jobs is RUNNING. On PostgreSQL the jobs it moves stay locked until the
        caller's transaction ends, so a worker of the old plan skips them meanwhile."""
        running = (
            select(_j.id).where(_j.run_id == run_id, _j.status == Status.RUNNING.value).exists()
        )
        statement = (
            update(jobs)
            .where(
                _j.run_id == run_id,
                _j.status.in_([Status.PENDING.value, Status.SUSPENDED.value]),
                ~running,
            )
            .values(plan_fingerprint=plan, updated_at=self._clock.now())
        )
        async with self._connections.single() as conn:
            await conn.execute(statement)
            busy = await conn.scalar(select(running))
        return not busy

    async def delete_jobs(self, run_ids: Sequence[str]) -> int:
        if not run_ids:
            return 0
        async with self._connections.single() as conn:
            result = await conn.execute(delete(jobs).where(_j.run_id.in_(list(run_ids))))
            return int(result.rowcount)

    async def jobs_of_run(self, run_id: str) -> list[JobRecord]:
        async with self._connections.single() as conn:
            rows = await conn.execute(select(jobs).where(_j.run_id == run_id).order_by(_j.position))
            return [to_record(JobRecord, row) for row in rows]

    async def limit_usage(self, limits: JobLimits) -> LimitUsage:
        async with self._connections.single() as conn:
            return await limit_usage(conn, limits, self._clock.now())

    async def active_limits(self) -> list[JobLimits]:
        async with self._connections.single() as conn:
            return await limited.active_limits(conn)

    async def limit_overrides(self) -> dict[str, int]:
        async with self._connections.single() as conn:
            return await limited.limit_overrides(conn)

    async def set_limit_override(self, key: str, bound: int | None) -> None:
        async with self._connections.single() as conn:
            await limited.set_limit_override(conn, key, bound)

    async def _update(self, job_id: str, attempt: int | None, **values: Any) -> None:
        """Change the job (fenced on `attempt` when given: then a lost lease changes nothing)."""
        fence = [] if attempt is None else [_j.attempt == attempt, _fenced_statuses()]
        async with self._connections.single() as conn:
            result = await conn.execute(
                update(jobs)
                .where(_j.id == job_id, *fence)
                .values(**values, updated_at=self._clock.now())
            )
        if result.rowcount == 0 and (attempt is None or not await self._exists(job_id)):
            raise RecordNotFoundError("Job", job_id)
