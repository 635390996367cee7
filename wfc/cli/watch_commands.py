"""`wfc runs watch RUN` and `wfc runs logs RUN`: follow a run that runs elsewhere.

A run is usually driven by a `wfc worker` (or a serverless host), not by the
shell that wants to see it. `watch` shows it as `wfc run` shows its own run
(the same `RunDisplay`: a line per stage event, a spinner while it runs) by
reading the database every `--interval` and as soon as the database says the run
ended (`wait_for_run`: a NOTIFY on PostgreSQL; on SQLite any commit to the file,
stage events too), and ends when the run does, exiting
as `wfc run` would: 0 completed, 1 failed or cancelled. `logs` prints the log
lines the kernel and stage code wrote for the run, oldest first, and with
`-f` keeps printing new ones until the run ends. Neither writes anything: Ctrl-C
only stops the watching (exit 130), the run goes on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from wfc.cli.number_options import Seconds
from wfc.cli.session import db_read_option, json_option, print_json, refused

if TYPE_CHECKING:
    from rich.console import Console

    from wfc.runtime.hosts import RunSnapshot
    from wfc.runtime.ports import Persistence
    from wfc.runtime.records import LogRecord, RunRecord

EXIT_INTERRUPTED = 130
INTERVAL_HELP = (
    "Seconds between two reads of the database (`runs watch` also reads as the run ends)."
)

interval_option = click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=Seconds(min=0.05),
    help=INTERVAL_HELP,
)


def _run_here(work: Any) -> Any:
    """`asyncio.run(work)`, with a refused run id as one line and Ctrl-C as exit 130."""
    import asyncio

    from wfc.errors import WfcError

    try:
        return asyncio.run(work)
    except WfcError as error:
        raise refused(error) from None
    except KeyboardInterrupt:
        click.echo("stopped watching; the run is left as it was", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


@click.command("watch")
@click.argument("typed", metavar="RUN")
@interval_option
@db_read_option
@json_option
def watch_command(typed: str, interval: float, db_url: str | None, as_json: bool) -> None:
    """Show a run that runs elsewhere (a worker's) live, as `wfc run` shows its own, until it
    ends. RUN is its id or a unique prefix. Exits 0 when it completed, 1 when it failed or was
    cancelled; Ctrl-C stops watching and leaves the run alone (exit 130)."""
    from rich.console import Console

    from wfc.cli.run_command import report, summary

    console = Console(stderr=True)
    run = _run_here(_watch(db_url, typed, interval, console))
    if as_json:
        print_json(summary(run))
    raise SystemExit(report(run, console, as_json))


async def _watch(db_url: str | None, typed: str, interval: float, console: Console) -> RunSnapshot:
    from datetime import timedelta

    from rich.markup import escape

    from wfc.cli.display import RunDisplay
    from wfc.cli.session import kernel_for, opened_storage
    from wfc.runtime.hosts import wait_for_run
    from wfc.runtime.run_ids import resolve_run_id

    async with opened_storage(db_url) as storage:
        kernel = kernel_for(storage)
        db = storage.persistence
        run = await db.get_run(await resolve_run_id(db, typed))
        assert run is not None
        total = await _stage_count(db, run.plan_fingerprint)
        console.print(
            f"watching run {run.id} [bold]{escape(run.workflow_id)}[/] "
            f"({run.status.value.lower()})",
            highlight=False,
            soft_wrap=True,
        )
        with RunDisplay(kernel, console, total) as display:
            return await wait_for_run(
                kernel,
                run.id,
                poll_interval=timedelta(seconds=interval),
                on_change=display.on_change,
            )


async def _stage_count(db: Persistence, fingerprint: str) -> int:
    """How many stages the run's plan has (0 when the plan was not kept)."""
    from wfc.plan import Plan

    stored = await db.get_plan(fingerprint)
    return 0 if stored is None else len(Plan.from_json(stored.plan).stages)


@click.command("logs")
@click.argument("typed", metavar="RUN")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option(
    "--stage",
    "stage_ids",
    multiple=True,
    metavar="STAGE",
    help="Only the lines of this stage (repeatable).",
)
@interval_option
@db_read_option
@json_option
def logs_command(
    typed: str,
    follow: bool,
    stage_ids: tuple[str, ...],
    interval: float,
    db_url: str | None,
    as_json: bool,
) -> None:
    """A run's log lines, oldest first: what its stages logged and what the kernel wrote
    about them (failed attempts with their traceback, retries). RUN is its id or a unique
    prefix. `--json` prints one JSON object per line."""
    _run_here(_print_logs(db_url, typed, follow, set(stage_ids), interval, as_json))


async def _print_logs(
    db_url: str | None,
    typed: str,
    follow: bool,
    stage_ids: set[str],
    interval: float,
    as_json: bool,
) -> None:
    from datetime import timedelta

    from wfc.cli.session import opened_storage
    from wfc.runtime.hosts.waiting import wait_at_most
    from wfc.runtime.records import TERMINAL
    from wfc.runtime.run_ids import resolve_run_id

    async with opened_storage(db_url) as storage:
        db = storage.persistence
        run_id = await resolve_run_id(db, typed)
        stages = {s.id: s.stage_id for s in await db.stages_of_run(run_id)}
        unknown = stage_ids - set(stages.values())
        if unknown and not follow:  # when following, a stage may not have started yet
            known = ", ".join(sorted(set(stages.values()))) or "none yet"
            raise click.ClickException(
                f"run {run_id} has no stage {', '.join(sorted(unknown))} (stages: {known})"
            )
        if follow:  # on stderr: stdout holds the lines alone, for pipes and --json
            run = await db.get_run(run_id)
            status = "" if run is None else f" ({run.status.value.lower()})"
            click.echo(f"following the logs of run {run_id}{status}", err=True)
        printed = 0

        async def print_new() -> RunRecord | None:
            """The lines not printed yet; the run as read before them (the last read,
            once the run has ended, sees them all)."""
            nonlocal printed
            run = await db.get_run(run_id)
            lines = await db.logs_of_run(run_id)
            stages.update({s.id: s.stage_id for s in await db.stages_of_run(run_id)})
            for line in lines[printed:]:
                stage_id = stages.get(line.stage_record_id or "")
                if not stage_ids or stage_id in stage_ids:
                    _print_line(line, stage_id, as_json)
            printed = len(lines)
            return run

        if not follow:
            await print_new()
            return
        # Woken as the run ends, here or in another process (`wait_for_run`'s waiters),
        # so its last lines print then, not at the next `--interval`.
        async with storage.run_end_waits.waiting(run_id) as ended:
            while True:
                woken = ended.arm()
                run = await print_new()
                if run is None or run.status in TERMINAL:
                    return
                await wait_at_most(woken, timedelta(seconds=interval))


def _print_line(line: LogRecord, stage_id: str | None, as_json: bool) -> None:
    """One log line: `time stage LEVEL message key=value…` and its traceback indented below,
    or one JSON object (redacted either way, as `runs show` prints them)."""
    import json

    from wfc.cli.show_details import indented, log_text
    from wfc.runtime.redact import redact, redact_data

    if as_json:
        entry = {
            "at": line.created_at.isoformat(),
            "stage_id": stage_id,
            "level": line.level,
            "message": redact(line.message),
            "fields": redact_data(line.fields),
        }
        click.echo(json.dumps(entry, default=str, ensure_ascii=False))
        return
    text, where = log_text(line, stage_id)
    click.echo(text)
    if where is not None:
        click.echo(indented(where))
