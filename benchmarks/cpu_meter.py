"""CPU time spent over a stretch of a benchmark, read from /proc (Linux only).

Runs/sec on a shared 2-core machine moves by a third from one hour to the
next, and CPU is what the worker and the database compete for: CPU per run
says where a change saved (or cost) work, whatever else the machine was doing.
`sample()` reads the machine's busy time, the CPU of the given processes and of
every PostgreSQL server process, and this process's own; `per_run` turns two
samples into milliseconds per run. Server processes that exit in between are
missed, so the machine's figure is the one to trust for totals.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class CpuSample:
    """Seconds of CPU so far: the whole machine's busy time, the workers', PostgreSQL's and
    this process's (the driver that creates the runs)."""

    machine: float
    workers: float
    postgres: float
    driver: float


def available() -> bool:
    return (PROC / "stat").exists()


def _process_seconds(pid: int) -> float:
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return pids


def sample(worker_pids: list[int]) -> CpuSample:
    fields = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return CpuSample(
        machine=(sum(fields) - idle) / os.sysconf("SC_CLK_TCK"),
        workers=sum(_process_seconds(pid) for pid in worker_pids),
        postgres=sum(_process_seconds(pid) for pid in _postgres_pids()),
        driver=time.process_time(),
    )


def per_run(before: CpuSample, after: CpuSample, runs: int) -> dict[str, float]:
    """Milliseconds of CPU per run between two samples, by where it was spent."""
    return {
        name: round(1000 * (getattr(after, name) - getattr(before, name)) / runs, 2)
        for name in ("machine", "workers", "postgres", "driver")
    }
