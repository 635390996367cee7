"""`wfc worker`: a long-running worker over the shared database, stopped by SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
from collections.abc import Coroutine
from dataclasses import asdict
from datetime import timedelta
from typing import Any, TypeVar

import click

from wfc.cli.logs import LogFormat, configure
from wfc.cli.session import db_option, kernel_for, load_workflows, opened_storage, plan_option
from wfc.runtime.hosts import WorkerHost, WorkerStats

log = logging.getLogger("wfc.worker")
T = TypeVar("T")


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
        async with opened_storage(db_url, worker_id=name) as storage:
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

    stats = _run_abandoning_threads(serve())
    log.info("exited", extra=asdict(stats))
    if threading.active_count() > 1:
        # A stage abandoned at shutdown (or by its timeout) still runs in a thread that
        # Python cannot stop; its job was released, so leave without joining it.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def _run_abandoning_threads(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` without its final wait for executor threads (stage code may hang)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # shuts the default executor down without waiting
