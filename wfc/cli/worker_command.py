"""`wfc worker`: a long-running worker over the shared database, stopped by SIGTERM/SIGINT.

Exit codes: 0 stopped by a signal; 3 the worker gave up (its database was away for
`--give-up-after`, or it holds more than `--max-abandoned-threads` stage threads
that never returned), after releasing its jobs: a supervisor should start it again.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from wfc.cli.number_options import Seconds, count
from wfc.cli.retention_command import retention_age
from wfc.cli.session import (
    DEFAULT_STAGE_TIMEOUT_SECONDS,
    db_option,
    exit_leaving_threads,
    kernel_for,
    load_plugins,
    load_workflows,
    opened_storage,
    otel_option,
    plan_option,
    plugin_option,
    run_leaving_threads,
    telemetry_or_exit,
)

if TYPE_CHECKING:
    from wfc.cli.logs import LogFormat
    from wfc.runtime.hosts import WorkerStats
    from wfc.runtime.kernel import Kernel
    from wfc.runtime.registry import WorkflowMap
    from wfc.web.embedded import EmbeddedDashboard

log = logging.getLogger("wfc.worker")

EXIT_GAVE_UP = 3


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _remember_sigterm() -> Callable[[], bool]:
    """Until the worker serves, a SIGTERM is remembered instead of killing the process.

    The host handles SIGTERM once it serves, but loading the plans and opening the
    database come first, and a SIGTERM then (a supervisor stopping a worker it just
    started) took the signal's default action: the process died with -15, not the
    0 of a clean stop. With this the worker stops without serving, and exits 0."""
    seen: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    return lambda: bool(seen)


QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def queue_names(
    _ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """The `--queue` names, checked as the language checks a stage's queue (none given:
    the project file's `worker.queues`, else the default queue)."""
    if not value:
        from wfc.cli.project import find_project

        project = find_project()
        value = project.queues if project is not None else ()
    for name in value:
        if not QUEUE_NAME.fullmatch(name):
            raise click.BadParameter(
                f"{name!r}: a queue name is 1 to 100 letters, digits, '_', '.' or '-'"
            )
    from wfc.plan import DEFAULT_QUEUE

    return tuple(dict.fromkeys(value)) or (DEFAULT_QUEUE,)


def concurrency(_ctx: click.Context, _param: click.Parameter, value: int | None) -> int:
    """`--concurrency`, else the project file's `worker.concurrency`, else 1."""
    if value is not None:
        return value
    from wfc.cli.project import find_project

    project = find_project()
    return project.concurrency if project is not None and project.concurrency else 1


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@click.command("worker")
@plan_option
@db_option
@click.option(
    "--concurrency",
    type=count(),
    callback=concurrency,
    help="Jobs run at once.  [default: the project file's worker.concurrency, else 1]",
)
@click.option("--worker-id", default=None, help="Default: <hostname>-<pid>.")
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=Seconds(),
    help="Seconds between job polls.",
)
@click.option(
    "--tick-interval",
    default=10.0,
    show_default=True,
    type=Seconds(),
    help="Seconds between ticks.",
)
@click.option(
    "--stale-lease",
    default=300.0,
    show_default=True,
    type=Seconds(),
    help="Seconds before a lease is reaped.",
)
@click.option(
    "--heartbeat",
    default=60.0,
    show_default=True,
    type=Seconds(),
    help="Seconds between lease renewals.",
)
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    type=Seconds(),
    help="Seconds to finish jobs on stop.",
)
@click.option(
    "--default-stage-timeout",
    default=DEFAULT_STAGE_TIMEOUT_SECONDS,
    show_default=True,
    type=Seconds(min=0),
    help="Seconds a stage whose plan sets no timeout may run (0: no limit).",
)
@click.option(
    "--max-abandoned-threads",
    default=4,
    show_default=True,
    type=click.IntRange(min=0),
    help="Exit (code 3) when more stage threads than this outlive their timeout or run.",
)
@click.option(
    "--give-up-after",
    default=300.0,
    show_default=True,
    type=Seconds(min=0),
    help="Exit (code 3) after this many seconds without the database (0: never).",
)
@plugin_option
@click.option(
    "--queue",
    "queues",
    multiple=True,
    callback=queue_names,
    help="Take jobs of this queue (repeatable; default: the `default` queue only).",
)
@click.option(
    "--retain",
    metavar="AGE",
    help="Delete finished runs older than AGE (e.g. 30d) as it goes, with all they hold.",
)
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
@otel_option
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    envvar="WFC_METRICS_PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (needs wfc[otel]).  "
    "[env: WFC_METRICS_PORT]",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    envvar="WFC_METRICS_HOST",
    help="The address /metrics listens on.",
)
@click.option(
    "--ui-port",
    type=click.IntRange(min=1, max=65535),
    envvar="WFC_UI_PORT",
    help="Also serve the read-only dashboard at http://127.0.0.1:PORT (needs wfc[ui]; "
    "`wfc ui` serves it on its own, with actions).  [env: WFC_UI_PORT]",
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
    default_stage_timeout: float,
    max_abandoned_threads: int,
    give_up_after: float,
    plugin_specs: tuple[str, ...],
    retain: str | None,
    queues: tuple[str, ...],
    log_format: LogFormat,
    otel: bool,
    metrics_port: int | None,
    metrics_host: str,
    ui_port: int | None,
) -> None:
    """Execute the jobs of the workflows in --plan until stopped (SIGTERM or Ctrl-C).

    Run as many as you like on as many machines as share the database; each
    job is taken by one worker. On stop, in-flight jobs get --grace seconds to
    finish, then go back to the queue for another worker. Exits 3 when it gives
    up (database away, stage threads stuck): restart it.
    """
    stopped_early = _remember_sigterm()
    from wfc.cli.logs import configure
    from wfc.observability.hosting import queue_sampling
    from wfc.runtime.adapters.sql import PoolOptions
    from wfc.runtime.hosts import WorkerHost

    configure(log_format)
    timeout = _seconds(default_stage_timeout) if default_stage_timeout else None
    registry = load_workflows(plans, default_stage_timeout=timeout)
    plugins = load_plugins(plugin_specs)
    telemetry = telemetry_or_exit(otel, metrics_port, metrics_host)
    retention = None if retain is None else retention_age(retain)
    name = worker_id or f"{socket.gethostname()}-{os.getpid()}"

    async def serve() -> WorkerStats:
        pool = PoolOptions.for_slots(concurrency)
        async with (
            opened_storage(db_url, worker_id=name, pool=pool) as storage,
            queue_sampling(telemetry, storage.engine, queues),
        ):
            host = WorkerHost(
                kernel_for(storage, registry, plugins),
                worker_id=name,
                concurrency=concurrency,
                orchestration_interval=_seconds(tick_interval),
                job_poll_interval=_seconds(poll_interval),
                stale_lease_threshold=_seconds(stale_lease),
                heartbeat_interval=_seconds(heartbeat),
                shutdown_grace=_seconds(grace),
                wakeups=storage.wakeups,
                max_abandoned_threads=max_abandoned_threads,
                give_up_after=_seconds(give_up_after) if give_up_after else None,
                database_file=sqlite_file(storage.url),
                retain=retention,
                queues=queues,
                schedules=storage.schedules,
            )
            if stopped_early():
                return host.stats()
            log.info(
                "serving",
                extra={
                    "worker_id": name,
                    "database": storage.url,
                    "workflows": registry.ids(),
                    "plugins": [plugin.id for plugin in plugins],
                    "queues": list(queues),
                },
            )
            return await host.serve()

    dashboard = _dashboard(db_url, registry, ui_port)
    try:
        stats = run_leaving_threads(serve())
    finally:
        if dashboard is not None:
            dashboard.stop()
        if telemetry is not None:
            telemetry.shutdown()  # exports the spans still buffered before the exit
    log.info("exited", extra=asdict(stats))
    if stats.gave_up is not None:
        click.echo(f"wfc worker: gave up: {stats.gave_up}", err=True)
        exit_leaving_threads(EXIT_GAVE_UP)
    exit_leaving_threads(0)


def _dashboard(
    db_url: str | None, registry: WorkflowMap, ui_port: int | None
) -> EmbeddedDashboard | None:
    """The dashboard on its own thread when asked for (`wfc.web.embedded`), started; or a
    one-line error when it cannot be served."""
    if ui_port is None:
        return None
    from wfc.web.embedded import DashboardUnavailable, EmbeddedDashboard

    @asynccontextmanager
    async def open_kernel() -> AsyncIterator[Kernel]:
        async with opened_storage(db_url, worker_id="ui") as storage:
            yield kernel_for(storage, registry)

    try:
        dashboard = EmbeddedDashboard(open_kernel, "127.0.0.1", ui_port)
    except DashboardUnavailable as error:
        raise click.ClickException(str(error)) from None
    dashboard.start()
    log.info("dashboard", extra={"url": dashboard.address})
    return dashboard
