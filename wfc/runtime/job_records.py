"""A job's records: what is queued (`JobSpec`), the queued row (`JobRecord`), the
fleet-wide limits it runs under (`JobLimits`, `LimitUsage`), and a mapped stage's item
handing its slot on with the next item's job (`ItemHandOn`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wfc.runtime.record_builders import quick_init
from wfc.runtime.records import DEFAULT_QUEUE, JsonObject, Status


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class JobLimits:
    """The fleet-wide limits a job is under, resolved for its run (`wfc.runtime.limits`).

    A concurrency key admits at most `concurrency_max` RUNNING jobs at once; a rate key
    at most `rate_max` starts per `rate_window_ms`. Jobs of different stages (or
    workflows) that share a key share its budget.
    """

    concurrency_key: str | None = None
    concurrency_max: int | None = None
    rate_key: str | None = None
    rate_max: int | None = None
    rate_window_ms: int | None = None

    def keys(self) -> list[str]:
        """The keys a lease under these limits locks, sorted (the one order every leasing
        transaction takes them in, so two cannot deadlock)."""
        return sorted(k for k in (self.concurrency_key, self.rate_key) if k is not None)


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class LimitUsage:
    """How full a job's limits are: RUNNING jobs under its concurrency key, and leases
    under its rate key within the window (None where it has no such limit), beside the
    bounds in force (an operator's override, else the plan's)."""

    running: int | None = None
    concurrency_max: int | None = None
    started: int | None = None
    rate_max: int | None = None

    @property
    def full(self) -> bool:
        """Whether a job under these limits must wait."""
        return (self.running is not None and self.running >= (self.concurrency_max or 0)) or (
            self.started is not None and self.started >= (self.rate_max or 0)
        )

    def room(self, wanted: int) -> int:
        """How many of `wanted` jobs under these limits may start now."""
        if self.running is not None:
            wanted = min(wanted, (self.concurrency_max or 0) - self.running)
        if self.started is not None:
            wanted = min(wanted, (self.rate_max or 0) - self.started)
        return wanted


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A job to enqueue: run one stage of one run."""

    run_id: str
    workflow_id: str
    stage_id: str
    priority: int
    max_attempts: int
    payload: JsonObject = field(default_factory=dict)
    run_at: datetime | None = None
    # Deliveries already made of this stage: a job queued again for a stage that ran
    # before (a stuck run repaired) continues its count, so its next delivery is newer
    # than any the stage row has seen (`StageFence.startable`) and max attempts hold.
    attempts_made: int = 0
    # The plan its run was created with: only a worker serving that plan dequeues it.
    plan_fingerprint: str | None = None
    # Only a worker serving this queue dequeues it.
    queue: str = DEFAULT_QUEUE
    limits: JobLimits | None = None


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """A queued, leased or finished job.

    `attempt` counts deliveries: it is incremented by each dequeue, so the
    first delivery sees 1. A job is not dequeued before `run_at`.
    """

    id: str
    run_id: str
    workflow_id: str
    stage_id: str
    status: Status
    priority: int
    attempt: int
    max_attempts: int
    payload: JsonObject
    created_at: datetime
    updated_at: datetime
    run_at: datetime | None = None
    worker_id: str | None = None
    locked_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_error: str | None = None
    plan_fingerprint: str | None = None
    queue: str = DEFAULT_QUEUE
    concurrency_key: str | None = None
    concurrency_max: int | None = None
    rate_key: str | None = None
    rate_max: int | None = None
    rate_window_ms: int | None = None

    @property
    def limits(self) -> JobLimits | None:
        """The limits the job is under, as its spec gave them (None: unlimited)."""
        if self.concurrency_key is None and self.rate_key is None:
            return None
        return JobLimits(
            concurrency_key=self.concurrency_key,
            concurrency_max=self.concurrency_max,
            rate_key=self.rate_key,
            rate_max=self.rate_max,
            rate_window_ms=self.rate_window_ms,
        )


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemHandOn:
    """A completed item of a mapped stage handing its slot on to the next item, recorded
    in one write without the run's lock (`Persistence.hand_on_item`): the item's row
    COMPLETED while still RUNNING at `attempt`, counted on its stage's row while that is
    RUNNING at `generation`, its leased job `job_id` completed while still at
    `job_attempt`, and `next_job` queued for the next item of the pass, whose index the
    write takes from the stage's row (`next_job_id`: its id; the payload's `item` is
    replaced)."""

    run_id: str
    record_id: str  # the stage's row
    generation: int
    item_id: str
    attempt: int
    output: Any
    metrics: JsonObject
    duration_ms: int
    job_id: str
    job_attempt: int
    next_job: JobSpec
    next_job_id: str
    now: datetime
