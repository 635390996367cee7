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
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from wfc.cli import children_display as kin
from wfc.cli.fleet import served_plans, stage_waits, waiting_for, waiting_note
from wfc.cli.json_input import read_config
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
from wfc.cli.signal_command import builtin_waits
from wfc.cli.tracebacks import last_tracebacks

if TYPE_CHECKING:
    from rich.console import Console

    from wfc.runtime.adapters.sql import SqlStorage
    from wfc.runtime.kernel import Kernel
    from wfc.runtime.plugins import Plugin
    from wfc.runtime.records import AIStats, ItemRecord, LogRecord, RunRecord, StageRecord
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


def _console() -> Console:
    """A console that does not squeeze tables to 80 columns when output is piped."""
    from rich.console import Console

    plain = Console()
    return plain if plain.is_terminal else Console(width=160)


def _ms(value: int | None) -> str:
    return "" if value is None else f"{value} ms"


@click.group("runs")
def runs_group() -> None:
    """Create, list, show, cancel and rerun runs."""


@runs_group.command("list")
@click.option("--status", type=click.Choice(RUN_STATUSES, case_sensitive=False))
@click.option("--workflow", "workflow_id", help="Only runs of this workflow.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
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
    children = any(r.parent_run_id for r in runs)  # a "parent" column only when one has one
    if children:
        table.add_column("parent", no_wrap=True)
    for r in runs:
        created = r.created_at.strftime("%Y-%m-%d %H:%M:%S")
        parent = [kin.parent_marker(r)] if children else []
        table.add_row(r.id, r.workflow_id, r.status.value, created, _ms(r.duration_ms), *parent)
    _console().print(table if runs else "no runs")
    note = waiting_note(runs, served)
    if note:
        _console().print(note, highlight=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Shown:
    """What `runs show` reads: the run, its stages with their AI spending and artifacts
    (`{stage_id: {name: blob key}}`), and its log lines when asked for."""

    run: RunRecord
    stages: list[StageRecord]
    costs: dict[str, AIStats]
    artifacts: dict[str, dict[str, str]]
    lines: list[LogRecord]
    served: set[str]  # the plans live workers serve
    running_items: dict[str, int]  # per mapped stage: its items running now
    items: list[ItemRecord]  # the items of the stage `--items` names
    waits: dict[str, str]  # per queued stage that cannot start now: why
    tracebacks: dict[str, str]  # per failed stage whose code raised: where
    children: kin.ChildLinks  # the runs its stages started, by stage


def _items_summary(stage: StageRecord, running: int) -> dict[str, int] | None:
    """A mapped stage's items: total, done, failed, running (None for other stages)."""
    if not stage.items_total:
        return None
    return {
        "total": stage.items_total,
        "done": stage.items_done,
        "failed": stage.items_failed,
        "running": running,
    }


@runs_group.command("show")
@click.argument("run_id")
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
    run_id: str, logs: bool, items_of: str | None, db_url: str | None, as_json: bool
) -> None:
    """A run with its stages: status, duration, attempts, errors, AI cost and artifacts; a
    mapped stage's items counted (done, failed, running of total) and, with --items, listed."""
    from wfc.runtime.kernel.invoke import stage_artifacts
    from wfc.runtime.records import Status

    async def read(kernel: Kernel, storage: SqlStorage) -> _Shown:
        db = kernel.deps.persistence
        run = await db.get_run(run_id)
        if run is None:
            raise click.ClickException(f"no run {run_id}")
        stages = sorted(await db.stages_of_run(run_id), key=lambda s: s.stage_number)
        costs = {
            s.stage_id: await storage.ai_calls.stats(f"workflow.{run_id}.stage.{s.stage_id}")
            for s in stages
        }
        artifacts = {s.stage_id: await stage_artifacts(kernel.deps.blobs, run, s) for s in stages}
        lines = (await db.logs_of_run(run_id)) if logs else []
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
        return _Shown(
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
        )

    shown = _with_kernel(db_url, read)
    if as_json:
        _print_show_json(shown, logs)
    else:
        _print_show_text(shown)


def _print_show_json(shown: _Shown, logs: bool) -> None:
    from wfc.runtime.redact import redact, redact_data

    stage_of_record = {s.id: s.stage_id for s in shown.stages}
    costs = shown.costs
    body = run_json(shown.run) | {
        "error": redact_data(shown.run.error),
        "waiting_for": waiting_for(shown.run, shown.served),
        "stages": [
            {
                "stage_id": s.stage_id,
                "name": s.stage_name,
                "status": s.status.value,
                "attempts": s.attempt,
                "duration_ms": s.duration_ms,
                "error": None if s.error is None else redact(s.error),
                "cost": costs[s.stage_id].total_cost,
                "tokens": costs[s.stage_id].total_input_tokens
                + costs[s.stage_id].total_output_tokens,
                "artifacts": [
                    {"name": name, "key": key} for name, key in shown.artifacts[s.stage_id].items()
                ],
                "items": _items_summary(s, shown.running_items.get(s.stage_id, 0)),
                "waits": shown.waits.get(s.stage_id),
                "traceback": shown.tracebacks.get(s.stage_id),
            }
            | kin.child_json(shown.children, s.stage_id)
            for s in shown.stages
        ],
    }
    if shown.items:
        body["items"] = [
            {
                "index": item.item_index,
                "status": item.status.value,
                "attempts": item.attempt,
                "duration_ms": item.duration_ms,
                "error": None if item.error is None else redact(item.error),
            }
            for item in shown.items
        ]
    if logs:
        body["logs"] = [
            {
                "stage_id": stage_of_record.get(line.stage_record_id or ""),
                "level": line.level,
                "message": redact(line.message),
                "fields": redact_data(line.fields),
            }
            for line in shown.lines
        ]
    print_json(body)


def _print_show_text(shown: _Shown) -> None:
    from rich.markup import escape
    from rich.table import Column, Table

    from wfc.runtime.redact import redact

    run, costs = shown.run, shown.costs
    console = _console()
    console.print(
        f"run {run.id}  [bold]{run.workflow_id}[/]  {run.status.value}  {_ms(run.duration_ms)}"
        f"  cost ${run.total_cost:.4f}  tokens {run.total_tokens}",
        highlight=False,
    )
    if kin.parent_line(run):
        console.print(kin.parent_line(run), highlight=False)
    if run.error:
        message = str(run.error.get("message", run.error))
        console.print(f"[red]error:[/] {escape(redact(message))}")
    note = waiting_note([run], shown.served)
    if note:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    mapped = any(stage.items_total for stage in shown.stages)
    columns = ["stage", "status", "attempts", "duration", "cost", *(["items"] if mapped else [])]
    columns += ["child run"] if shown.children else []
    table = Table(*columns, "error")
    for stage in shown.stages:
        summary = _items_summary(stage, shown.running_items.get(stage.stage_id, 0))
        counted = (
            []
            if not mapped
            else [
                ""
                if summary is None
                else f"{summary['done']}/{summary['total']} done, {summary['failed']} failed, "
                f"{summary['running']} running"
            ]
        )
        table.add_row(
            stage.stage_id,
            stage.status.value,
            str(stage.attempt),
            _ms(stage.duration_ms),
            f"${costs[stage.stage_id].total_cost:.4f}",
            *counted,
            *([kin.child_cell(shown.children, stage.stage_id)] if shown.children else []),
            escape(redact(stage.error or "")),
        )
    console.print(table)
    for stage_id, why in shown.waits.items():
        console.print(f"[yellow]{escape(stage_id)} {escape(why)}[/]", highlight=False)
    for stage_id, where in shown.tracebacks.items():
        console.print(
            f"[red]{escape(stage_id)} raised:[/]\n{escape(where.rstrip())}", highlight=False
        )
    if shown.items:
        listing = Table("item", "status", "attempts", "duration", "error")
        for item in shown.items:
            listing.add_row(
                str(item.item_index),
                item.status.value,
                str(item.attempt),
                _ms(item.duration_ms),
                escape(redact(item.error or "")),
            )
        console.print(listing)
    listed = [
        (stage_id, name, key)
        for stage_id, named in shown.artifacts.items()
        for name, key in named.items()
    ]
    if listed:
        artifacts = Table("stage", "artifact", Column("blob key", overflow="fold"))
        for stage_id, name, key in listed:
            artifacts.add_row(stage_id, escape(name), escape(key))
        console.print(artifacts)
    stage_of_record = {s.id: s.stage_id for s in shown.stages}
    for line in shown.lines:
        where = stage_of_record.get(line.stage_record_id or "", "-")
        console.print(
            f"[dim]{where}[/] {line.level} {escape(redact(line.message))}", highlight=False
        )


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
@click.argument("run_id")
@click.option("--reason", help="Recorded with the cancellation.")
@db_read_option
@json_option
def cancel_command(run_id: str, reason: str | None, db_url: str | None, as_json: bool) -> None:
    """Cancel a pending or running run; a stage executing now finishes, its result is dropped."""
    from wfc.runtime.commands import RunCancel

    async def cancel(kernel: Kernel, _s: SqlStorage) -> bool:
        result = await kernel.dispatch(RunCancel(workflow_run_id=run_id, reason=reason))
        return result.cancelled

    cancelled = _with_kernel(db_url, cancel)
    if as_json:
        print_json({"run_id": run_id, "cancelled": cancelled})
    elif cancelled:
        click.echo(f"cancelled {run_id}")
    else:
        raise click.ClickException(f"run {run_id} was not cancelled: it is missing or finished")


@runs_group.command("rerun")
@click.argument("run_id")
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
    run_id: str,
    from_stage: str,
    failed_items: bool,
    plans: tuple[str, ...],
    db_url: str | None,
    as_json: bool,
) -> None:
    """Run a finished run again from a stage; earlier stages keep their outputs. With
    --failed-items, a mapped stage keeps its completed items and runs the others again."""
    from wfc.runtime.commands import RunRerunFrom

    registry = load_workflows(plans)

    async def rerun(kernel: Kernel, _s: SqlStorage) -> list[str]:
        result = await kernel.dispatch(
            RunRerunFrom(
                workflow_run_id=run_id, from_stage_id=from_stage, only_failed_items=failed_items
            )
        )
        return result.deleted_stages

    deleted = _with_kernel(db_url, rerun, registry)
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
