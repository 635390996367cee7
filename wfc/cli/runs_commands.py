"""`wfc runs …` and `wfc maintenance tick`: create, inspect, cancel and rerun runs from a shell.

Every command works on the database alone, so it can be pointed at the one
the workers use. `--json` prints what tools need; the text forms are for people.
`runs show` redacts secrets from the errors and log lines it prints, though the
kernel stores them redacted already: rows written before that, or by other
code, must not leak either.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

import click

from wfc.cli import children_display as kin
from wfc.cli.fleet import served_plans, stage_waits, waiting_for, waiting_note
from wfc.cli.json_input import read_config
from wfc.cli.number_options import count
from wfc.cli.session import (
    announce_database,
    db_option,
    db_read_option,
    json_option,
    kernel_for,
    load_plugins,
    load_workflows,
    opened_storage,
    parse_json_option,
    plan_option,
    plugin_option,
    print_json,
    refused,
    run_json,
)
from wfc.cli.show_details import last_progress
from wfc.cli.show_output import Shown, console_for_tables, ms, print_show_json, print_show_text
from wfc.cli.signal_command import builtin_waits
from wfc.cli.tracebacks import item_tracebacks, last_tracebacks

if TYPE_CHECKING:
    from wfc.runtime.adapters.sql import SqlStorage
    from wfc.runtime.kernel import Kernel
    from wfc.runtime.plugins import Plugin
    from wfc.runtime.records import ItemRecord, RunRecord
    from wfc.runtime.registry import WorkflowMap

T = TypeVar("T")

RUN_STATUSES = ("PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
"""The values of `wfc.runtime.records.Status`, copied so that `wfc runs list --help` can
offer them without importing the runtime (tests/unit/test_cli_imports.py keeps them equal)."""

PRIORITY = click.IntRange(-(2**31), 2**31 - 1)
"""`wfc.runtime.commands.PRIORITY_MIN/MAX`, copied likewise: what every database stores."""
IDEMPOTENCY_KEY_MAX = 200
"""`wfc.runtime.commands.IDEMPOTENCY_KEY_MAX`, copied likewise."""


def _idempotency_key(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """An idempotency key as given, refused when empty (it would silently make a new run
    each time) or longer than a key is stored."""
    if value is not None and not value.strip():
        raise click.BadParameter("an empty key makes no run idempotent: leave the option out")
    if value is not None and len(value) > IDEMPOTENCY_KEY_MAX:
        raise click.BadParameter(f"at most {IDEMPOTENCY_KEY_MAX} characters ({len(value)} given)")
    return value


def _with_kernel(
    db_url: str | None,
    work: Callable[[Kernel, SqlStorage], Awaitable[T]],
    registry: WorkflowMap | None = None,
    plugins: Sequence[Plugin] = (),
) -> T:
    import asyncio

    from pydantic import ValidationError

    from wfc.errors import WfcError

    async def main() -> T:
        async with opened_storage(db_url) as storage:
            return await work(kernel_for(storage, registry, plugins), storage)

    try:
        return asyncio.run(main())
    except (WfcError, ValidationError) as error:  # exit 2 for refused input or config
        raise refused(error) from None


@click.group("runs")
def runs_group() -> None:
    """Create, list, show, watch, cancel and rerun runs (a run by its id or a unique prefix)."""


@runs_group.command("list")
@click.option("--status", type=click.Choice(RUN_STATUSES, case_sensitive=False))
@click.option("--workflow", "workflow_id", help="Only runs of this workflow.")
@click.option("--limit", default=20, show_default=True, type=count())
@db_read_option
@json_option
def list_command(
    status: str | None, workflow_id: str | None, limit: int, db_url: str | None, as_json: bool
) -> None:
    """The newest runs first."""
    from rich.table import Column, Table

    from wfc.runtime.records import Status

    async def read(kernel: Kernel, _s: SqlStorage) -> tuple[list[RunRecord], set[str]]:
        db = kernel.deps.persistence
        runs = await db.list_runs(
            status=Status(status.upper()) if status else None, workflow_id=workflow_id, limit=limit
        )
        return runs, await served_plans(db)

    runs, served = _with_kernel(db_url, read)
    if as_json:
        print_json([run_json(r) | {"waiting_for": waiting_for(r, served)} for r in runs])
        return
    announce_database()
    table = Table(Column("run", no_wrap=True, min_width=36), "workflow", "status", "created")
    table.add_column("duration", justify="right")
    table.add_column("cost", justify="right")
    children = any(r.parent_run_id for r in runs)  # a "parent" column only when one has one
    if children:
        table.add_column("parent", no_wrap=True)
    for r in runs:
        created = r.created_at.strftime("%Y-%m-%d %H:%M:%S")
        parent = [kin.parent_marker(r)] if children else []
        cost = f"${r.total_cost:.4f}"
        table.add_row(
            r.id, r.workflow_id, r.status.value, created, ms(r.duration_ms), cost, *parent
        )
    console_for_tables().print(table if runs else "no runs")
    note = waiting_note(runs, served)
    if note:
        console_for_tables().print(note, highlight=False)


@runs_group.command("show")
@click.argument("typed", metavar="RUN")
@click.option("--logs", is_flag=True, help="Also print the stages' log lines.")
@click.option(
    "--items",
    "items_of",
    metavar="STAGE",
    help="Also list the items of this mapped stage: status, attempts, duration, error.",
)
@db_read_option
@json_option
def show_command(
    typed: str, logs: bool, items_of: str | None, db_url: str | None, as_json: bool
) -> None:
    """A run with its stages: status, duration, attempts, errors, AI cost and artifacts; each
    stage's times, next check, progress, metrics, AI calls and traceback; a mapped stage's
    items counted (done, failed, running of total) and, with --items, listed. RUN is its id
    or a unique prefix of it (4 characters or more)."""
    from wfc.runtime.kernel.invoke import stage_artifacts
    from wfc.runtime.records import Status
    from wfc.runtime.run_ids import resolve_run_id

    async def read(kernel: Kernel, storage: SqlStorage) -> Shown:
        db = kernel.deps.persistence
        run = await db.get_run(await resolve_run_id(db, typed))
        if run is None:
            raise click.ClickException(f"no run {typed}")
        run_id = run.id
        stages = sorted(await db.stages_of_run(run_id), key=lambda s: s.stage_number)
        costs = {
            s.stage_id: await storage.ai_calls.stats(f"workflow.{run_id}.stage.{s.stage_id}")
            for s in stages
        }
        artifacts = {s.stage_id: await stage_artifacts(kernel.deps.blobs, run, s) for s in stages}
        lines = (await db.logs_of_run(run_id)) if logs or items_of is not None else []
        running = {
            s.stage_id: len(await db.items_of_stage(run_id, s.stage_id, statuses=[Status.RUNNING]))
            for s in stages
            if s.items_total
        }
        items: list[ItemRecord] = []
        if items_of is not None:
            if items_of not in running:
                mapped = ", ".join(sorted(running)) or "none"
                raise click.ClickException(
                    f"run {run_id} has no mapped stage {items_of!r} that ran (mapped: {mapped})"
                )
            items = await db.items_of_stage(run_id, items_of)
        mapped_row = next((s.id for s in stages if s.stage_id == items_of), "")
        return Shown(
            run=run,
            stages=stages,
            costs=costs,
            artifacts=artifacts,
            lines=lines,
            served=await served_plans(db),
            running_items=running,
            items=items,
            waits={**await stage_waits(db, kernel.deps.jobs, run), **builtin_waits(stages)}
            | kin.child_waits(stages),
            children=kin.child_links(await db.children_of(run_id)),
            tracebacks=await last_tracebacks(db, run_id, stages, lines),
            progress=last_progress(await db.outbox_of_run(run_id)),
            item_tracebacks=item_tracebacks(lines, mapped_row),
        )

    shown = _with_kernel(db_url, read)
    if as_json:
        print_show_json(shown, logs)
    else:
        print_show_text(shown, logs)


@runs_group.command("create")
@click.argument("workflow_id")
@plan_option
@click.option("--input", "input_text", help="Run input: JSON, or @file.json.")
@click.option("--config", "config_text", help='Stage config: {"stage": {...}}, or @file.json.')
@click.option("--priority", type=PRIORITY, help="Higher runs are claimed first.")
@click.option(
    "--idempotency-key",
    callback=_idempotency_key,
    help="Creating twice with one key creates one run.",
)
@db_option
@json_option
def create_command(
    workflow_id: str,
    plans: tuple[str, ...],
    input_text: str | None,
    config_text: str | None,
    priority: int | None,
    idempotency_key: str | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Create a PENDING run for the workers to take (does not wait for it).

    With TRACEPARENT set (a W3C traceparent, as a traced script passes its span on),
    the run's spans join that trace when workers trace (`wfc worker --otel`).
    """
    from wfc.observability import incoming_trace
    from wfc.runtime.commands import RunCreate

    run_input = parse_json_option(input_text, "--input")
    config = read_config(config_text)
    registry = load_workflows(plans)

    async def create(kernel: Kernel, _s: SqlStorage) -> str:
        result = await kernel.dispatch(
            RunCreate(
                idempotency_key=idempotency_key or f"cli:{kernel.deps.ids.new_id()}",
                workflow_id=workflow_id,
                input=run_input,
                config=config,
                priority=priority,
            )
        )
        return result.workflow_run_id

    with incoming_trace(os.environ.get("TRACEPARENT")):  # the event loop's tasks inherit it
        run_id = _with_kernel(db_url, create, registry)
    if as_json:
        print_json({"run_id": run_id, "status": "PENDING"})
    else:
        click.echo(run_id)


@runs_group.command("cancel")
@click.argument("typed", metavar="RUN")
@click.option("--reason", help="Recorded with the cancellation.")
@db_read_option
@json_option
def cancel_command(typed: str, reason: str | None, db_url: str | None, as_json: bool) -> None:
    """Cancel a pending or running run; a stage executing now finishes, its result is dropped.
    RUN is its id or a unique prefix of it."""
    from wfc.runtime.commands import RunCancel
    from wfc.runtime.run_ids import resolve_run_id

    async def cancel(kernel: Kernel, _s: SqlStorage) -> tuple[str, bool]:
        run_id = await resolve_run_id(kernel.deps.persistence, typed)
        result = await kernel.dispatch(RunCancel(workflow_run_id=run_id, reason=reason))
        return run_id, result.cancelled

    run_id, cancelled = _with_kernel(db_url, cancel)
    if as_json:
        print_json({"run_id": run_id, "cancelled": cancelled})
    elif cancelled:
        click.echo(f"cancelled {run_id}")
    else:
        raise click.ClickException(f"run {run_id} was not cancelled: it is missing or finished")


@runs_group.command("rerun")
@click.argument("typed", metavar="RUN")
@click.option("--from", "from_stage", required=True, help="Stage to run again from.")
@click.option(
    "--failed-items",
    is_flag=True,
    help="The --from stage is mapped: run again only its items that did not complete.",
)
@plan_option
@db_read_option
@json_option
def rerun_command(
    typed: str,
    from_stage: str,
    failed_items: bool,
    plans: tuple[str, ...],
    db_url: str | None,
    as_json: bool,
) -> None:
    """Run a finished run again from a stage; earlier stages keep their outputs. With
    --failed-items, a mapped stage keeps its completed items and runs the others again. RUN
    is its id or a unique prefix of it."""
    from wfc.runtime.commands import RunRerunFrom
    from wfc.runtime.run_ids import resolve_run_id

    registry = load_workflows(plans)

    async def rerun(kernel: Kernel, _s: SqlStorage) -> tuple[str, list[str]]:
        run_id = await resolve_run_id(kernel.deps.persistence, typed)
        result = await kernel.dispatch(
            RunRerunFrom(
                workflow_run_id=run_id, from_stage_id=from_stage, only_failed_items=failed_items
            )
        )
        return run_id, result.deleted_stages

    run_id, deleted = _with_kernel(db_url, rerun, registry)
    if as_json:
        print_json({"run_id": run_id, "from_stage_id": from_stage, "deleted_stages": deleted})
    else:
        click.echo(f"rerunning {run_id} from {from_stage} (cleared: {', '.join(deleted) or '-'})")


@click.group("maintenance")
def maintenance_group() -> None:
    """Periodic work for deployments without a long-running worker."""


@maintenance_group.command("tick")
@plan_option
@db_option
@click.option("--worker-id", default="cron", show_default=True)
@plugin_option
@json_option
def tick_command(
    plans: tuple[str, ...],
    db_url: str | None,
    worker_id: str,
    plugin_specs: tuple[str, ...],
    as_json: bool,
) -> None:
    """One maintenance tick: claim runs, poll suspended stages, reap leases and stuck runs,
    flush the outbox (to --plugin's plugins). Exits 1 if a step failed (the others still
    ran)."""
    from wfc.runtime.hosts import MaintenanceSettings, maintenance_tick

    registry = load_workflows(plans)
    plugins = load_plugins(plugin_specs)

    async def tick(kernel: Kernel, _s: SqlStorage) -> dict[str, Any]:
        return asdict(await maintenance_tick(kernel, MaintenanceSettings(worker_id=worker_id)))

    result = _with_kernel(db_url, tick, registry, plugins)
    if as_json:
        print_json(result)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in result.items() if k != "errors"))
    if result["errors"]:
        raise click.ClickException(f"steps failed: {', '.join(result['errors'])}")
