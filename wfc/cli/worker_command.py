"""`wfc worker`: a long-running worker over the shared database, stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import asdict
from datetime import timedelta

import click

from wfc.cli.logs import LogFormat, configure
from wfc.cli.session import (
    db_option,
    exit_leaving_threads,
    kernel_for,
    load_workflows,
    opened_storage,
    plan_option,
    run_leaving_threads,
)
from wfc.runtime.adapters.sql import PoolOptions
from wfc.runtime.hosts import WorkerHost, WorkerStats

log = logging.getLogger("wfc.worker")


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@click.command("worker")
@plan_option
@db_option
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--worker-id", default=None, help="Default: <hostname>-<pid>.")
@click.option("--poll-interval", default=1.0, show_default=True, help="Seconds between job polls.")
@click.option("--tick-interval", default=10.0, show_default=True, help="Seconds between ticks.")
@click.option(
    "--stale-lease", default=300.0, show_default=True, help="Seconds before a lease is reaped."
)
@click.option(
    "--heartbeat", default=60.0, show_default=True, help="Seconds between lease renewals."
)
@click.option("--grace", default=30.0, show_default=True, help="Seconds to finish jobs on stop.")
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
def worker_command(
    plans: tuple[str, ...],
    db_url: str | None,
    concurrency: int,
    worker_id: str | None,
    poll_interval: float,
    tick_interval: float,
    stale_lease: float,
    heartbeat: float,
    grace: float,
    log_format: LogFormat,
) -> None:
    """Execute the jobs of the workflows in --plan until stopped (SIGTERM or Ctrl-C).

    Run as many as you like on as many machines as share the database; each
    job is taken by one worker. On stop, in-flight jobs get --grace seconds to
    finish, then go back to the queue for another worker.
    """
    configure(log_format)
    registry = load_workflows(plans)
    name = worker_id or f"{socket.gethostname()}-{os.getpid()}"

    async def serve() -> WorkerStats:
        pool = PoolOptions.for_slots(concurrency)
        async with opened_storage(db_url, worker_id=name, pool=pool) as storage:
            host = WorkerHost(
                kernel_for(storage, registry),
                worker_id=name,
                concurrency=concurrency,
                orchestration_interval=_seconds(tick_interval),
                job_poll_interval=_seconds(poll_interval),
                stale_lease_threshold=_seconds(stale_lease),
                heartbeat_interval=_seconds(heartbeat),
                shutdown_grace=_seconds(grace),
                wakeups=storage.wakeups,
            )
            log.info(
                "serving",
                extra={"worker_id": name, "database": storage.url, "workflows": registry.ids()},
            )
            return await host.serve()

    stats = run_leaving_threads(serve())
    log.info("exited", extra=asdict(stats))
    exit_leaving_threads(0)
