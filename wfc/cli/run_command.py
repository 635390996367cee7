"""`wfc run`: compile when needed, run one workflow in this process, show it live.

The run is durable like any other (it lives in the database), so an
interrupted `wfc run` loses nothing: on Ctrl-C or SIGTERM it hands the stages it
was running back to the queue, names the run and exits 130 or 143, and a
`wfc worker` on the same database finishes it. It runs its own run only: other
runs in the database are left to the workers.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from wfc.cli.json_input import read_config
from wfc.cli.number_options import Seconds
from wfc.cli.session import (
    db_option,
    exit_leaving_threads,
    json_option,
    kernel_for,
    load_workflows,
    opened_storage,
    otel_option,
    parse_json_option,
    print_json,
    refused,
    run_json,
    run_leaving_threads,
    telemetry_or_exit,
)

if TYPE_CHECKING:
    from rich.console import Console

    from wfc.runtime.hosts import RunSnapshot
    from wfc.runtime.registry import WorkflowMap

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Terminated(Exception):
    """SIGTERM: the run was left to the workers, its stages released."""


def summary(run: RunSnapshot) -> dict[str, Any]:
    """The finished run as `--json` prints it: the run, and each stage."""
    stages = [
        {
            "stage_id": s.stage_id,
            "status": s.status.value,
            "attempts": s.attempts,
            "duration_ms": s.duration_ms,
            "error": s.error,
        }
        for s in run.stages
    ]
    return run_json(run.run) | {"stages": stages}


def _pick(registry: WorkflowMap, wanted: str | None) -> str:
    ids = registry.ids()
    if wanted is not None:
        if wanted not in ids:
            raise click.BadParameter(f"no workflow {wanted!r}; found {', '.join(ids)}")
        return wanted
    if len(ids) != 1:
        raise click.BadParameter(
            f"several workflows ({', '.join(ids)}); choose one", param_hint="--workflow"
        )
    return ids[0]


@click.command("run")
@click.argument("source")
@click.option("--input", "input_text", help="Run input: JSON, or @file.json.")
@click.option("--config", "config_text", help='Stage config: {"stage": {...}}, or @file.json.')
@click.option("--workflow", "workflow_id", help="Which workflow, when SOURCE holds several.")
@click.option("--timeout", type=Seconds(), help="Give up waiting after this many seconds.")
@db_option
@json_option
@otel_option
def run_command(
    source: str,
    input_text: str | None,
    config_text: str | None,
    workflow_id: str | None,
    timeout: float | None,
    db_url: str | None,
    as_json: bool,
    otel: bool,
) -> None:
    """Run SOURCE (.wf, package or plan.json) to the end here, showing each stage live.

    Prints the output and exits 0 when the run completes; exits 1 naming the
    stage and error when it fails, 2 when the input is refused (no run is created).
    """
    from rich.console import Console

    run_input = parse_json_option(input_text, "--input")
    config = read_config(config_text)
    registry = load_workflows([source])
    chosen = _pick(registry, workflow_id)
    workflow = registry.get(chosen)
    assert workflow is not None
    console = Console(stderr=True)
    created: list[str] = []
    telemetry = telemetry_or_exit(otel)
    try:
        try:
            run = run_leaving_threads(
                _run(
                    registry,
                    chosen,
                    run_input,
                    config,
                    db_url,
                    timeout,
                    console,
                    len(workflow.plan.stages),
                    created,
                )
            )
        finally:
            if telemetry is not None:
                telemetry.shutdown()  # sends the spans still buffered before the exit
    except KeyboardInterrupt:
        console.print(_left(created, "interrupted"), highlight=False, soft_wrap=True)
        exit_leaving_threads(EXIT_INTERRUPTED)
    except _Terminated:
        console.print(_left(created, "terminated"), highlight=False, soft_wrap=True)
        exit_leaving_threads(EXIT_TERMINATED)
    if as_json:
        print_json(summary(run))
    exit_leaving_threads(report(run, console, as_json))


async def _run(
    registry: WorkflowMap,
    workflow_id: str,
    run_input: dict[str, Any],
    config: dict[str, Any],
    db_url: str | None,
    timeout: float | None,
    console: Console,
    total_stages: int,
    created: list[str],
) -> RunSnapshot:
    import asyncio

    main = asyncio.current_task()
    assert main is not None
    terminated: list[bool] = []

    def on_sigterm() -> None:  # stop as Ctrl-C does: the host's cleanup releases its stages
        if not terminated:
            terminated.append(True)
            main.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await _run_here(
            registry,
            workflow_id,
            run_input,
            config,
            db_url,
            timeout,
            console,
            total_stages,
            created,
        )
    except asyncio.CancelledError:
        if terminated:
            raise _Terminated from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run_here(
    registry: WorkflowMap,
    workflow_id: str,
    run_input: dict[str, Any],
    config: dict[str, Any],
    db_url: str | None,
    timeout: float | None,
    console: Console,
    total_stages: int,
    created: list[str],
) -> RunSnapshot:
    from pydantic import ValidationError

    from wfc.cli.display import RunDisplay
    from wfc.errors import ConfigValidationError, InvalidRunInputError
    from wfc.runtime.hosts import run_and_wait

    async with opened_storage(db_url, worker_id="wfc-run") as storage:
        kernel = kernel_for(storage, registry)
        with RunDisplay(kernel, console, total_stages) as display:
            try:
                return await run_and_wait(
                    kernel,
                    workflow_id,
                    run_input,
                    config=config,
                    on_change=display.on_change,
                    on_created=created.append,
                    timeout=None if timeout is None else timedelta(seconds=timeout),
                )
            except (InvalidRunInputError, ConfigValidationError, ValidationError) as error:
                raise refused(error) from None  # input refused: exits 2 with no run
            except TimeoutError as error:
                raise click.ClickException(f"{error}; a `wfc worker` can finish it") from None


def _left(created: list[str], what: str) -> str:
    """The one line `wfc run` ends with when stopped before its run finished."""
    if not created:
        return f"{what} before the run was created"
    run_id = created[0]
    return (
        f"{what}: the run is kept ({run_id}), its running stages released for a `wfc worker` "
        f"on this database to finish; follow it with `wfc runs show {run_id}`"
    )


def report(run: RunSnapshot, console: Console, as_json: bool) -> int:
    """The line a run's end gets (and its output on stdout when it completed): the exit
    code `wfc run` and `wfc runs watch` end with, 0 completed, 1 failed or cancelled."""
    from rich.markup import escape

    from wfc.runtime.records import Status

    took = f" in {run.duration_ms} ms" if run.duration_ms is not None else ""
    if run.status is Status.COMPLETED:
        console.print(f"[green]✔[/] run {run.run_id} completed{took}", highlight=False)
        if not as_json:
            print_json(run.output)
        return 0
    error = run.error or {}
    stage = error.get("stage_id")
    where = f" at stage {stage}" if stage else ""
    message = escape(str(error.get("message") or run.status.value.lower()))
    console.print(
        f"[red]✖[/] run {run.run_id} {run.status.value.lower()}{where}: {message}", highlight=False
    )
    return 1
