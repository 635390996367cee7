"""What a worker tells of its work: `WorkerStats`, and the tally and log line of each job.

Apart from `WorkerHost` (`wfc.runtime.hosts.worker`) because it is bookkeeping only:
nothing here decides what the worker does next.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from wfc.runtime.hosts.steps import JobOutcome
from wfc.runtime.job_records import JobRecord

log = logging.getLogger("wfc.worker")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStats:
    """What a worker has done since it started."""

    worker_id: str
    jobs_processed: int
    jobs_succeeded: int
    jobs_failed: int
    orchestration_ticks: int
    running: bool
    in_flight: int
    uptime_s: float
    abandoned_threads: int = 0  # stage threads still running after their job was given up on
    gave_up: str | None = None  # why the worker stopped itself; a supervisor should restart it


class JobTally:
    """The jobs a worker has processed, by how they ended."""

    __slots__ = ("failed", "processed", "succeeded")

    def __init__(self) -> None:
        self.processed = self.succeeded = self.failed = 0

    def count(self, worker_id: str, job: JobRecord, outcome: JobOutcome, started: float) -> None:
        """Count `job`, processed since `started` (`time.monotonic`), and log it at INFO."""
        self.processed += 1
        if outcome.outcome == "failed":
            self.failed += 1
        else:
            self.succeeded += 1
        if not log.isEnabledFor(logging.INFO):  # (its fields cost more than the call)
            return
        log.info(
            "job %s",
            outcome.outcome,
            extra={
                "worker_id": worker_id,
                "job_id": job.id,
                "run_id": job.run_id,
                "stage_id": job.stage_id,
                "attempt": job.attempt,
                "outcome": outcome.outcome,
                "retried": outcome.retried,
                "error": outcome.error,
                "duration_ms": round((time.monotonic() - started) * 1000, 2),
            },
        )
