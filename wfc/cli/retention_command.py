"""`wfc runs prune`: delete finished runs older than a cutoff, with all they hold."""

from __future__ import annotations

import re
from datetime import timedelta

import click

from wfc.cli.number_options import LONGEST_SECONDS, count
from wfc.cli.session import db_read_option, json_option, kernel_for, opened_storage, print_json

_AGE = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
FINISHED_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")


def parse_age(value: str) -> timedelta:
    """`30d`, `12h`, `1w2d`, `90m` as a duration; `ValueError` naming the format otherwise."""
    text = value.strip().lower()
    parts = list(_AGE.finditer(text))
    if not text or "".join(p.group(0) for p in parts) != text:
        raise ValueError(f"{value!r} is not a duration: write e.g. 30d, 12h, 90m or 1w2d")
    # Counted in whole milliseconds (Python integers do not overflow) before any `timedelta`,
    # which overflows past 999,999,999 days: a cutoff before year 1 does not exist, so an
    # age over a century is refused.
    milliseconds = sum(int(p.group(1)) * (_UNIT[p.group(2)] // _UNIT["ms"]) for p in parts)
    if milliseconds > LONGEST_SECONDS * 1000:
        raise ValueError(f"{value!r} is longer than a century (36500d), the longest age taken")
    return timedelta(milliseconds=milliseconds)


def retention_age(value: str, option: str = "--retain") -> timedelta:
    """`parse_age`, or a usage error naming `option` (exit 2)."""
    try:
        return parse_age(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=f"'{option}'") from None


@click.command("prune")
@click.option(
    "--older-than",
    "age",
    required=True,
    help="Delete runs that finished longer ago than this (e.g. 30d, 12h).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(FINISHED_STATUSES, case_sensitive=False),
    help="Only runs that ended so (repeatable; default: every finished run).",
)
@click.option("--batch", default=500, show_default=True, type=count())
@db_read_option
@json_option
def prune_command(
    age: str,
    statuses: tuple[str, ...],
    batch: int,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Delete finished runs older than --older-than with their stages, items, jobs, logs,
    events and blobs, a batch per transaction. Running and pending runs are never touched;
    the AI cost ledger is kept."""
    import asyncio

    from wfc.runtime.kernel.retention import FINISHED, prune_finished_runs
    from wfc.runtime.records import Status

    older_than = retention_age(age, "--older-than")
    chosen = tuple(Status(s.upper()) for s in statuses) or FINISHED

    async def prune() -> dict[str, int]:
        async with opened_storage(db_url) as storage:
            kernel = kernel_for(storage)
            pruned = await prune_finished_runs(
                kernel.deps, older_than, statuses=chosen, batch=batch
            )
            return {"runs": pruned.runs, "jobs": pruned.jobs, "blobs": pruned.blobs}

    result = asyncio.run(prune())
    if as_json:
        print_json(result)
    else:
        click.echo(
            f"pruned {result['runs']} run(s) finished over {age} ago "
            f"({result['jobs']} jobs, {result['blobs']} blobs)"
        )
