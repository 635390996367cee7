"""`wfc limits`: the fleet-wide limits in force, and an operator's bound in place of a plan's.

A stage's `concurrency` and `rate` come with its plan; an operator who must
slow a stage down now (a provider lowered a quota) or let it go faster sets
another bound for the limit's key in the database, where every worker's
next lease reads it. No deploy, no restart; `reset` gives the plan its say back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from wfc.cli.number_options import INTEGER_MAX, count
from wfc.cli.session import db_option, db_read_option, json_option, opened_storage, print_json

if TYPE_CHECKING:
    from wfc.runtime.ports import JobTransport


@click.group("limits")
def limits_group() -> None:
    """Fleet-wide concurrency and rate limits: how full each is, and operators' bounds."""


@limits_group.command("list")
@db_read_option
@json_option
def list_limits(db_url: str | None, as_json: bool) -> None:
    """The limits of queued and running jobs (and keys with an operator's bound): running
    or started in the window, the bound in force, and where it comes from."""
    import asyncio

    async def read() -> list[dict[str, Any]]:
        async with opened_storage(db_url) as storage:
            return await _limit_rows(storage.jobs)

    rows = asyncio.run(read())
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no limited job is queued or running, and no bound is set")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("key", "kind", "in use", "bound", "set by")
    for row in rows:
        table.add_row(
            row["key"], row["kind"], _in_use(row), _shown(row["bound"]), row["bound_from"]
        )
    Console(width=None if Console().is_terminal else 160).print(table)


async def _limit_rows(jobs: JobTransport) -> list[dict[str, Any]]:
    from wfc.cli.fleet import window_words

    overrides = await jobs.limit_overrides()
    rows: dict[str, dict[str, Any]] = {}
    for limits in await jobs.active_limits():
        usage = await jobs.limit_usage(limits)
        if limits.concurrency_key is not None:
            rows[limits.concurrency_key] = {
                "key": limits.concurrency_key,
                "kind": "concurrency",
                "in_use": usage.running,
                "bound": usage.concurrency_max,
                "plan_bound": limits.concurrency_max,
            }
        if limits.rate_key is not None:
            rows[limits.rate_key] = {
                "key": limits.rate_key,
                "kind": f"rate per {window_words(limits.rate_window_ms or 0)}",
                "in_use": usage.started,
                "bound": usage.rate_max,
                "plan_bound": limits.rate_max,
            }
    for key, bound in overrides.items():
        rows.setdefault(
            key,
            {"key": key, "kind": key.partition(":")[0], "in_use": None, "plan_bound": None},
        )["bound"] = bound
    for row in rows.values():
        row["bound_from"] = "operator" if row["key"] in overrides else "plan"
    return [rows[key] for key in sorted(rows)]


def _in_use(row: dict[str, Any]) -> str:
    return "-" if row["in_use"] is None else str(row["in_use"])


def _shown(bound: int | None) -> str:
    return "-" if bound is None else str(bound)


@limits_group.command("set")
@click.argument("key")
@click.argument("bound", type=count(at_most=INTEGER_MAX))
@db_option
def set_limit(key: str, bound: int, db_url: str | None) -> None:
    """Make BOUND the limit of KEY (as `wfc limits list` shows it) for every worker, in
    place of the plan's, until `wfc limits reset KEY`."""
    _set(key, bound, db_url)
    click.echo(f"{key}: bound {bound} (set by operator)")


@limits_group.command("reset")
@click.argument("key")
@db_read_option
def reset_limit(key: str, db_url: str | None) -> None:
    """Give KEY its plan's bound again."""
    _set(key, None, db_url)
    click.echo(f"{key}: the plan's bound again")


def _set(key: str, bound: int | None, db_url: str | None) -> None:
    import asyncio

    if not key.startswith(("concurrency:", "rate:")):
        raise click.BadParameter(
            f"{key!r} is not a limit key: they start with 'concurrency:' or 'rate:' "
            "(`wfc limits list` shows them)",
            param_hint="KEY",
        )

    async def write() -> None:
        async with opened_storage(db_url) as storage:
            await storage.jobs.set_limit_override(key, bound)

    asyncio.run(write())
