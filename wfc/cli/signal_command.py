"""`wfc runs signal RUN NAME`: send a signal to a run; and what `wfc runs show` says of a
stage that sleeps or waits for one.

The payload is checked against the schema the run's workflow declares for the
signal before anything is kept: a payload that does not fit lists the failing
fields and exits 2, as bad input does; a missing or finished run, or a signal
the workflow does not declare, is a one-line error (exit 1). The command serves
no workflow: it reads the run's plan from the database, and when a stage waits
for the signal it completes it and queues the run's next stages in the same
commit, for the workers to run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from wfc.cli.session import (
    EXIT_USAGE,
    db_read_option,
    json_option,
    opened_storage,
    print_json,
    refused,
)

if TYPE_CHECKING:
    from wfc.runtime.commands import RunSignalResult
    from wfc.runtime.records import StageRecord

KEY_MAX = 200
"""`wfc.runtime.commands.IDEMPOTENCY_KEY_MAX`, copied so `--help` imports no runtime."""


def _payload(text: str | None) -> Any:
    """The payload given inline or as `@path` (null when left out); bad JSON is exit 2."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as error:
            raise click.BadParameter(
                f"cannot read {text[1:]}: {error.strerror}", param_hint="--payload"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(
            f"not JSON ({error.msg} at line {error.lineno} column {error.colno})",
            param_hint="--payload",
        ) from None


def _key(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("an empty key makes no signal idempotent: leave the option out")
    if value is not None and len(value) > KEY_MAX:
        raise click.BadParameter(f"at most {KEY_MAX} characters ({len(value)} given)")
    return value


@click.command("signal")
@click.argument("run_id", metavar="RUN")
@click.argument("name")
@click.option("--payload", "payload_text", help="The payload: JSON, or @file.json (default null).")
@click.option(
    "--key",
    callback=_key,
    help="Idempotency key (per run): sending again under it sends nothing new.",
)
@db_read_option
@json_option
def signal_command(
    run_id: str,
    name: str,
    payload_text: str | None,
    key: str | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Send the signal NAME to the run RUN (its id, or a unique prefix of it): the stage
    waiting for it resumes now, or the first one to wait for it takes it."""
    import asyncio

    payload = _payload(payload_text)
    from wfc.errors import InvalidSignalPayloadError, WfcError

    try:
        run_id, result = asyncio.run(_send(db_url, run_id, name, payload, key))
    except InvalidSignalPayloadError as error:
        click.echo(f"error: invalid payload for signal {error.name}:", err=True)
        for problem in error.problems:
            click.echo(f"  - {problem}", err=True)
        click.echo("no signal was sent", err=True)
        sys.exit(EXIT_USAGE)
    except WfcError as error:
        raise refused(error) from None
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    again = " (sent before under this key)" if result.duplicate else ""
    if result.delivered_to is None:
        click.echo(f"signal {name} kept for run {run_id}{again}: no stage waits for it yet")
    else:
        click.echo(f"signal {name} delivered to stage {result.delivered_to} of run {run_id}{again}")


async def _send(
    db_url: str | None, typed: str, name: str, payload: Any, key: str | None
) -> tuple[str, RunSignalResult]:
    """The run's full id (RUN may be a unique prefix of it) and what sending did."""
    from wfc.cli.session import kernel_for
    from wfc.runtime.hosts.run_and_wait import signal_run
    from wfc.runtime.run_ids import resolve_run_id

    async with opened_storage(db_url) as storage:
        kernel = kernel_for(storage)
        run_id = await resolve_run_id(storage.persistence, typed)
        # `signal_run` refuses a payload no database stores (NaN, a NUL) as an invalid one.
        return run_id, await signal_run(kernel, run_id, name, payload, key=key)


def builtin_waits(stages: list[StageRecord]) -> dict[str, str]:
    """What each sleeping or signal-waiting stage waits for, by stage id: `sleeps until …`,
    `waits for signal approve (since …, times out at …)`."""
    waits: dict[str, str] = {}
    for stage in stages:
        state = stage.suspended_state or {}
        if stage.status.value != "SUSPENDED":
            continue
        if "sleep_until" in state:
            waits[stage.stage_id] = f"sleeps until {state['sleep_until']}"
        elif "signal" in state:
            times_out = state.get("times_out_at")
            until = f", times out at {times_out}" if times_out else ", no timeout"
            waits[stage.stage_id] = (
                f"waits for signal {state['signal']} (since {state.get('since')}{until})"
            )
    return waits
