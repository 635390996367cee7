"""The benchmark's two shapes on DBOS Transact, for comparison (run in its own virtualenv).

`python dbos_shapes.py worker URL ID` serves the queues until killed;
`python dbos_shapes.py drive URL SHAPE RUNS ISOLATED` enqueues RUNS workflows
through a DBOSClient and waits for all, twice, then makes ISOLATED runs one at a
time, and prints JSON: runs/sec of both bursts and run latency p50/p99. Stages are trivial, as in wfc's run.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from typing import Any

from dbos import DBOS, DBOSClient, DBOSConfig

POLL = 0.05  # DBOS's default queue poll is 1 s; a short one is the fairest comparison
RESULT_POLL = 0.01  # how often the client asks for a result when timed by the wall clock


@DBOS.step()
def stage(n: int) -> int:
    return n + 1


@DBOS.workflow()
def branch(n: int) -> int:
    return stage(n)


@DBOS.workflow()
def seq3(n: int) -> int:
    return stage(stage(stage(n)))


@DBOS.workflow()
def fan(n: int) -> int:
    first = stage(n)
    queue = DBOS.retrieve_queue("fan")
    assert queue is not None
    handles = [queue.enqueue(branch, first) for _ in range(4)]
    return stage(sum(h.get_result() for h in handles))


def serve(url: str, executor_id: str) -> None:
    config: DBOSConfig = {
        "name": "wfc-bench",
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": "bench",
        "log_level": "WARNING",
        "use_listen_notify": url.startswith("postgresql"),
    }
    DBOS(config=config)
    DBOS.launch()  # workflows are registered at import, queues after launch
    DBOS.register_queue("bench", polling_interval_sec=POLL)
    DBOS.register_queue("fan", polling_interval_sec=POLL)
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def coarse_clock(url: str) -> bool:
    """Whether DBOS's own timestamps are whole seconds here (SQLite before 3.42)."""
    return url.startswith("sqlite") and sqlite3.sqlite_version_info < (3, 42)


def wait_for(handle: Any, wall: bool) -> None:
    """The workflow's result, asked for often when the wall clock times it (else at
    DBOS's default, as its status rows time it)."""
    if wall:
        handle.get_result(polling_interval_sec=RESULT_POLL)
    else:
        handle.get_result()


def burst(client: DBOSClient, options: dict[str, str], count: int, wall: bool) -> float:
    """Enqueue `count` workflows at once, wait for all: runs/sec from their status rows
    (this process's clock if `wall`)."""
    began = time.perf_counter()
    handles = [client.enqueue(options, n) for n in range(count)]  # type: ignore[arg-type]
    for handle in handles:
        wait_for(handle, wall)
    if wall:
        return count / (time.perf_counter() - began)
    statuses = [h.get_status() for h in handles]
    span_ms = max(s.updated_at or 0 for s in statuses) - min(s.created_at or 0 for s in statuses)
    return count / (span_ms / 1000)


def drive(url: str, shape: str, count: int, isolated: int) -> None:
    """Two bursts (the second is reported, as for wfc), then one at a time; times come from
    DBOS's own status rows (epoch ms)."""
    client = DBOSClient(system_database_url=url)
    options = {"workflow_name": shape, "queue_name": "bench", "app_version": "bench"}
    wall = coarse_clock(url)
    first = burst(client, options, count, wall)
    rate = burst(client, options, count, wall)
    latencies = []
    for n in range(isolated):
        began = time.perf_counter()
        handle = client.enqueue(options, n)  # type: ignore[arg-type]
        wait_for(handle, wall)
        if wall:
            latencies.append((time.perf_counter() - began) * 1000)
            continue
        status = handle.get_status()
        latencies.append(float((status.updated_at or 0) - (status.created_at or 0)))
    client.destroy()
    result = {
        "runs_per_s": rate,
        "first_burst_runs_per_s": first,
        "latency_p50_ms": pct(latencies, 50),
        "latency_p99_ms": pct(latencies, 99),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        serve(sys.argv[2], sys.argv[3])
    else:
        drive(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
