"""`wfc schedules`: add, list, pause, resume and delete the cron schedules workers fire.

Schedules declared in a plan are written by the workers that serve it; those
added here are the operator's (`source` cli) and workers never change them.
Either kind can be paused, resumed and deleted here (a plan's schedule that is
deleted comes back when a worker serving the plan starts). A bad cron
expression, time zone or input is one line on stderr and exit 2; nothing is
written then.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from wfc.cli.session import (
    EXIT_USAGE,
    db_option,
    db_read_option,
    json_option,
    opened_storage,
    print_json,
)

if TYPE_CHECKING:
    from datetime import datetime

    from wfc.runtime.adapters.sql import SqlStorage
    from wfc.runtime.schedule_store import ScheduleRecord

CATCH_UP = ("skip", "latest", "all")
OVERLAP = ("skip", "allow")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _refuse(command: str, message: str) -> NoReturn:
    """One line on stderr, exit 2: nothing was written."""
    click.echo(f"wfc schedules {command}: {message}", err=True)
    sys.exit(EXIT_USAGE)


def input_problems(schema: dict[str, Any], value: dict[str, Any]) -> list[str]:
    """What of `value` a workflow's input schema refuses at its top level: required fields
    missing, fields it does not declare, fields of the wrong JSON type. (The worker checks
    the whole input when it fires; this catches the usual mistakes before anything is
    written.)"""
    properties: dict[str, Any] = schema.get("properties") or {}
    problems = [f"{name}: required" for name in schema.get("required", []) if name not in value]
    if properties:
        problems += [
            f"{name}: not a field of the input" for name in value if name not in properties
        ]
    for name, field in properties.items():
        if name not in value:
            continue
        options = field.get("anyOf", [field])
        kinds = [option.get("type") for option in options]
        if None in kinds or any(k not in _JSON_TYPES and k != "null" for k in kinds):
            continue  # a $ref or a schema this check does not read: the worker's check
        given = value[name]
        fits = any(
            (kind == "null" and given is None)
            or (
                kind in _JSON_TYPES
                and isinstance(given, _JSON_TYPES[kind])
                and not (isinstance(given, bool) and kind in ("integer", "number"))
            )
            for kind in kinds
        )
        if not fits:
            problems.append(f"{name}: expected {' or '.join(str(k) for k in kinds)}")
    return problems


async def _find(storage: SqlStorage, command: str, name: str, workflow: str | None) -> Any:
    """The one schedule called `name` (of `workflow`, when given)."""
    matches = [
        s
        for s in await storage.schedules.schedules()
        if s.name == name and (workflow is None or s.workflow_id == workflow)
    ]
    if not matches:
        of = f" of workflow {workflow}" if workflow else ""
        raise click.ClickException(f"no schedule named {name!r}{of}")
    if len(matches) > 1:
        workflows = ", ".join(s.workflow_id for s in matches)
        _refuse(
            command, f"several workflows have a schedule {name!r} ({workflows}): pass --workflow"
        )
    return matches[0]


def _now() -> datetime:
    from wfc.runtime.adapters.memory import SystemClock

    return SystemClock().now()


@click.group("schedules")
def schedules_group() -> None:
    """Cron schedules: a run of a workflow on each tick, fired once across the workers."""


@schedules_group.command("add")
@click.argument("name")
@click.option("--workflow", "workflow_id", required=True, help="The workflow to run.")
@click.option("--cron", required=True, help='Five-field cron, e.g. "0 6 * * *".')
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone of the cron.")
@click.option("--input", "input_json", help="The runs' input: JSON, or @file.json.")
@click.option("--catch-up", type=click.Choice(CATCH_UP), default="latest", show_default=True)
@click.option("--overlap", type=click.Choice(OVERLAP), default="skip", show_default=True)
@db_option
def add_schedule(
    name: str,
    workflow_id: str,
    cron: str,
    timezone: str,
    input_json: str | None,
    catch_up: str,
    overlap: str,
    db_url: str | None,
) -> None:
    """Add a schedule: a run of --workflow with --input on each tick of --cron in --timezone."""
    import asyncio

    from wfc.cli.session import parse_json_option
    from wfc.runtime.cron import CronError, check, next_after

    try:
        check(cron, timezone)
    except CronError as error:
        _refuse("add", str(error))
    try:
        run_input = parse_json_option(input_json, "--input")
    except click.BadParameter as error:
        _refuse("add", f"--input: {error.message}")

    async def add() -> tuple[ScheduleRecord, bool]:
        from wfc.plan import Plan
        from wfc.runtime.adapters.memory import UuidIds
        from wfc.runtime.adapters.sql.schedules import latest_plan
        from wfc.runtime.schedule_store import ScheduleRecord

        async with opened_storage(db_url) as storage:
            kept = await latest_plan(storage.engine, workflow_id)
            if kept is not None:
                problems = input_problems(Plan.from_json(kept.plan).input_schema, run_input)
                if problems:
                    _refuse("add", f"--input for {workflow_id}: {'; '.join(problems)}")
            now = _now()
            record = ScheduleRecord(
                id=UuidIds().new_id(),
                workflow_id=workflow_id,
                name=name,
                cron=cron,
                timezone=timezone,
                input=run_input,
                catch_up=catch_up,
                overlap=overlap,
                paused=False,
                source="cli",
                next_due_at=next_after(cron, timezone, now),
                created_at=now,
                updated_at=now,
            )
            if not await storage.schedules.add(record):
                raise click.ClickException(
                    f"workflow {workflow_id} already has a schedule {name!r}"
                )
            return record, kept is not None

    record, known = asyncio.run(add())
    click.echo(f"added schedule {name} of {workflow_id}: next run at {_when(record.next_due_at)}")
    if not known:
        click.echo(
            f"note: no plan of {workflow_id} is recorded yet (no worker served it); "
            "its input is checked when a worker fires the schedule"
        )


def _when(instant: datetime | None) -> str:
    return "-" if instant is None else instant.strftime("%Y-%m-%d %H:%M:%SZ")


def _as_json(s: ScheduleRecord) -> dict[str, Any]:
    return {
        "name": s.name,
        "workflow_id": s.workflow_id,
        "cron": s.cron,
        "timezone": s.timezone,
        "input": s.input,
        "catch_up": s.catch_up,
        "overlap": s.overlap,
        "paused": s.paused,
        "source": s.source,
        "next_due_at": s.next_due_at.isoformat(),
        "last_tick_at": s.last_tick_at.isoformat() if s.last_tick_at else None,
        "last_outcome": s.last_outcome,
        "last_run_id": s.last_run_id,
    }


@schedules_group.command("list")
@click.option("--workflow", "workflow_id", help="Only this workflow's schedules.")
@db_read_option
@json_option
def list_schedules(workflow_id: str | None, db_url: str | None, as_json: bool) -> None:
    """Every schedule: its cron, when it is next due, its last tick and run."""
    import asyncio

    async def read() -> list[ScheduleRecord]:
        async with opened_storage(db_url) as storage:
            only = None if workflow_id is None else [workflow_id]
            return await storage.schedules.schedules(workflow_ids=only)

    schedules = asyncio.run(read())
    if as_json:
        print_json([_as_json(s) for s in schedules])
        return
    if not schedules:
        click.echo("no schedules")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "workflow", "cron", "tz", "next due", "last tick", "last run", "paused")
    table.add_column("source")
    for s in schedules:
        last = _when(s.last_tick_at)
        if s.last_outcome and s.last_outcome != "started":
            last += f" ({s.last_outcome})"
        table.add_row(
            s.name,
            s.workflow_id,
            s.cron,
            s.timezone,
            "paused" if s.paused else _when(s.next_due_at),
            last,
            s.last_run_id or "-",
            "yes" if s.paused else "no",
            s.source,
        )
    Console(width=None if Console().is_terminal else 200).print(table)


def _named_command(verb: str, help_text: str) -> Any:
    """`pause`, `resume` or `delete`: NAME, with --workflow when names repeat across workflows."""

    @schedules_group.command(verb, help=help_text)
    @click.argument("name")
    @click.option("--workflow", "workflow_id", help="The schedule's workflow (when names repeat).")
    @db_read_option
    def command(name: str, workflow_id: str | None, db_url: str | None) -> None:
        import asyncio

        asyncio.run(_act(verb, name, workflow_id, db_url))
        click.echo(f"{verb}d schedule {name}" if verb != "resume" else f"resumed schedule {name}")

    return command


async def _act(verb: str, name: str, workflow_id: str | None, db_url: str | None) -> None:
    from wfc.runtime.cron import next_after

    async with opened_storage(db_url) as storage:
        found = await _find(storage, verb, name, workflow_id)
        store, now = storage.schedules, _now()
        if verb == "pause":
            done = await store.set_paused(found.id, True, now)
        elif verb == "resume":  # from the next tick: those missed while paused are not fired
            done = await store.set_paused(
                found.id, False, now, next_after(found.cron, found.timezone, now)
            )
        else:
            done = await store.delete([found.id]) == 1
        if not done:
            raise click.ClickException(f"schedule {name!r} was deleted meanwhile")


pause_schedule = _named_command("pause", "Stop firing the schedule until it is resumed.")
resume_schedule = _named_command(
    "resume", "Fire the schedule again from its next tick (ticks missed while paused are not)."
)
delete_schedule = _named_command(
    "delete", "Delete the schedule (a plan's comes back when a worker serving the plan starts)."
)
