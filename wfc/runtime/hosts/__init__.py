"""Hosts: what turns the kernel into running work (worker, serverless, in-process)."""

from __future__ import annotations

from wfc.runtime.hosts.steps import (
    JobOutcome,
    MaintenanceSettings,
    TickResult,
    maintenance_tick,
    process_job,
)

__all__ = ["JobOutcome", "MaintenanceSettings", "TickResult", "maintenance_tick", "process_job"]
