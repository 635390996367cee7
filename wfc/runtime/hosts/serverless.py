"""`ServerlessHost`: one bounded call per invocation, for Lambda, Cloud Run or cron (spec §9.4).

A queue-triggered function calls `handle_job(message)` for each job message; a
scheduled function calls `process_available_jobs` to drain the SQL queue and
`run_maintenance_tick` to claim runs, poll suspended stages, reap leases and
stuck runs, and flush the outbox. Multi-stage runs progress across
invocations because finishing a stage transitions the run, which enqueues the
next group for the next invocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from wfc.runtime.hosts.steps import (
    HEARTBEAT_INTERVAL,
    JobOutcome,
    MaintenanceSettings,
    TickResult,
    maintenance_tick,
    process_job,
)
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import Kernel
from wfc.runtime.records import Status


class JobMessage(BaseModel):
    """A job as a queue message carries it (camelCase keys, as the reference engine sends)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    job_id: str
    workflow_run_id: str
    workflow_id: str
    stage_id: str
    attempt: int = Field(default=1, ge=1)
    max_attempts: int | None = None
    priority: int = 0
    payload: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, job: JobRecord) -> JobMessage:
        """The message to publish for a queued job (attempt counts this delivery)."""
        return cls(
            job_id=job.id,
            workflow_run_id=job.run_id,
            workflow_id=job.workflow_id,
            stage_id=job.stage_id,
            attempt=job.attempt + 1 if job.status is Status.PENDING else max(job.attempt, 1),
            max_attempts=job.max_attempts,
            priority=job.priority,
            payload=job.payload,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainResult:
    """What `process_available_jobs` did; suspended jobs count as succeeded."""

    processed: int
    succeeded: int
    failed: int


class ServerlessHost:
    """The host for platforms that invoke a function per message or per schedule."""

    def __init__(
        self,
        kernel: Kernel,
        *,
        worker_id: str = "serverless",
        stale_lease_threshold: timedelta = timedelta(minutes=5),
        max_claims_per_tick: int = 10,
        max_suspended_checks_per_tick: int = 10,
        max_outbox_flush_per_tick: int = 100,
        heartbeat_interval: timedelta = HEARTBEAT_INTERVAL,
    ) -> None:
        self.kernel = kernel
        self.heartbeat_interval = heartbeat_interval
        self.settings = MaintenanceSettings(
            worker_id=worker_id,
            max_claims=max_claims_per_tick,
            max_suspended_checks=max_suspended_checks_per_tick,
            max_outbox_flush=max_outbox_flush_per_tick,
            stale_lease_threshold=stale_lease_threshold,
        )

    async def handle_job(self, message: JobMessage | dict[str, Any] | str) -> JobOutcome:
        """Execute the job a message describes. Map completed/suspended to an ack and
        failed to the platform's retry. Exceptions propagate (the message is redelivered)."""
        if isinstance(message, str):
            msg = JobMessage.model_validate_json(message)
        elif isinstance(message, dict):
            msg = JobMessage.model_validate(message)
        else:
            msg = message
        now = self.kernel.deps.clock.now()
        job = JobRecord(
            id=msg.job_id,
            run_id=msg.workflow_run_id,
            workflow_id=msg.workflow_id,
            stage_id=msg.stage_id,
            status=Status.RUNNING,
            priority=msg.priority,
            attempt=msg.attempt,
            max_attempts=msg.max_attempts or 3,
            payload=msg.payload,
            created_at=now,
            updated_at=now,
        )
        return await process_job(
            self.kernel, job, heartbeat_every=self.heartbeat_interval, delivery_may_repeat=True
        )

    async def process_available_jobs(self, max_jobs: int = 1) -> DrainResult:
        """Lease and process up to `max_jobs` due jobs from the kernel's transport."""
        processed = succeeded = failed = 0
        while processed < max_jobs:
            plans = self.kernel.deps.registry.plans()
            leased = await self.kernel.deps.jobs.dequeue(1, plans=plans)
            if not leased:
                break
            outcome = await process_job(
                self.kernel, leased[0], heartbeat_every=self.heartbeat_interval
            )
            processed += 1
            if outcome.outcome == "failed":
                failed += 1
            else:
                succeeded += 1
        return DrainResult(processed=processed, succeeded=succeeded, failed=failed)

    async def run_maintenance_tick(self) -> TickResult:
        """Claim, poll, reap stale leases, flush the outbox, reap stuck runs: each isolated."""
        return await maintenance_tick(self.kernel, self.settings)
