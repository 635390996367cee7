"""Hosts: what turns the kernel into running work (worker, serverless, in-process)."""

from __future__ import annotations

from wfc.runtime.hosts.run_and_wait import (
    RunSnapshot,
    StageSummary,
    run_and_wait,
    signal_run,
    snapshot,
    wait_for_run,
)
from wfc.runtime.hosts.serverless import DrainResult, JobMessage, ServerlessHost
from wfc.runtime.hosts.steps import (
    JobOutcome,
    MaintenanceSettings,
    TickResult,
    maintenance_tick,
    process_job,
)
from wfc.runtime.hosts.wiring import make_kernel
from wfc.runtime.hosts.worker import WorkerHost
from wfc.runtime.hosts.worker_stats import WorkerStats

__all__ = [
    "DrainResult",
    "JobMessage",
    "JobOutcome",
    "MaintenanceSettings",
    "RunSnapshot",
    "ServerlessHost",
    "StageSummary",
    "TickResult",
    "WorkerHost",
    "WorkerStats",
    "maintenance_tick",
    "make_kernel",
    "process_job",
    "run_and_wait",
    "signal_run",
    "snapshot",
    "wait_for_run",
]
