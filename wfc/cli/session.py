"""What the runtime commands share: the database option, opened storage, loaded workflows,
JSON options, and one-line errors instead of tracebacks.

Exit codes of the runtime commands: 0 success, 1 a run failed or an operation
was refused, 2 bad usage or input (nothing was created).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from click.core import ParameterSource

if TYPE_CHECKING:
    from wfc.errors import InvalidRunInputError
    from wfc.observability.setup import Telemetry
    from wfc.runtime.adapters.sql import PoolOptions, SqlStorage
    from wfc.runtime.kernel import Kernel
    from wfc.runtime.plugins import Plugin
    from wfc.runtime.records import RunRecord
    from wfc.runtime.registry import WorkflowMap

URL_HELP = (
    "database URL, or a SQLite file's path (default: `database` in the project file, else "
    ".wfc/wfc.db here; env WFC_DATABASE_URL)"
)
DATABASE_KEY = "wfc.database"
"""Where `db_option` leaves the `Database` it resolved, in the click context's `meta`."""


def _database(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """The URL the command uses: --db, WFC_DATABASE_URL, the project file, the default."""
    from wfc.cli.project import resolve_database

    source = ctx.get_parameter_source(param.name or "")
    from_env = source is ParameterSource.ENVIRONMENT
    chosen = resolve_database(value, "environment" if from_env else None)
    ctx.meta[DATABASE_KEY] = chosen
    return chosen.url


def _existing_database(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    """As `_database`, for a command that only reads: a SQLite file that is not there is
    not created, the command says so (exit 1)."""
    return require_existing(_database(ctx, param, value))


def announce_database() -> None:
    """One dim line on stderr: which database the command read, and what chose it (stdout,
    and `--json` output, stay as they were)."""
    from rich.console import Console
    from rich.markup import escape

    from wfc.cli.project import Database, shown

    chosen = click.get_current_context().meta.get(DATABASE_KEY)
    if isinstance(chosen, Database):
        origin = chosen.origin if chosen.origin == "default" else f"from {chosen.origin}"
        line = f"[dim]database {escape(shown(chosen.url))} ({escape(origin)})[/]"
        Console(stderr=True).print(line, highlight=False, soft_wrap=True)


def require_existing(url: str) -> str:
    """`url`, unless it names a SQLite file that is not there: then exit 1 saying so."""
    from wfc.cli.project import shown, sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise click.ClickException(
            f"no wfc database at {shown(url)}; run `wfc db upgrade` or pass --db"
        )
    return url


db_option = click.option(
    "--db", "db_url", envvar="WFC_DATABASE_URL", default=None, help=URL_HELP, callback=_database
)
db_read_option = click.option(
    "--db",
    "db_url",
    envvar="WFC_DATABASE_URL",
    default=None,
    help=URL_HELP,
    callback=_existing_database,
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for tools.")

otel_option = click.option(
    "--otel/--no-otel",
    envvar="WFC_OTEL",
    default=False,
    help="Export traces and metrics with OpenTelemetry (OTEL_* variables configure it; "
    "needs wfc[otel]).  [env: WFC_OTEL]",
)


def telemetry_or_exit(
    otel: bool, metrics_port: int | None = None, metrics_host: str = "127.0.0.1"
) -> Telemetry | None:
    """Observability as asked for (None when it is not: nothing of OpenTelemetry is then
    imported), or a one-line error when it cannot be had (the extra missing, a port taken).
    Whoever gets one calls `shutdown()` before exiting, to send what it still holds."""
    from wfc.observability.hosting import worker_telemetry
    from wfc.observability.setup import ObservabilityUnavailable

    try:
        return worker_telemetry(otel, metrics_port, metrics_host)
    except ObservabilityUnavailable as error:
        raise click.ClickException(str(error)) from None


def _plans(ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from wfc.cli.project import plans_or_project

    return plans_or_project(value, required=not ctx.resilient_parsing)


plan_option = click.option(
    "--plan",
    "plans",
    multiple=True,
    callback=_plans,
    help="A .wf file, a compiled package directory, its plan.json or a package name "
    "(repeatable; default: `plans` in the project file).",
)
plugin_option = click.option(
    "--plugin",
    "plugin_specs",
    multiple=True,
    metavar="MODULE:OBJECT",
    help="Plugins to deliver run events to: a Plugin, a list of them, or a function "
    "returning either (repeatable).",
)
EXIT_USAGE = 2
T = TypeVar("T")

DEFAULT_STAGE_TIMEOUT_SECONDS = 3600.0
"""`wfc.runtime.hosts.wiring.DEFAULT_STAGE_TIMEOUT`, copied so that `wfc worker --help` can
show it without importing the runtime (tests/unit/test_cli_imports.py keeps them equal)."""


@contextmanager
def database_errors(url: str, *, connected: bool = False) -> Iterator[None]:
    """Turn an unreachable database (or one lost mid-command, once `connected`) or a wrong
    schema revision into one line (no password)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from wfc.runtime.adapters.sql import SchemaRevisionError, redact

    try:
        yield
    except SchemaRevisionError as error:
        raise click.ClickException(str(error)) from None
    except (OperationalError, DBAPIError, OSError) as error:
        reason = str(getattr(error, "orig", error) or error).splitlines()[0]
        if connected:
            raise click.ClickException(
                f"database {redact(url)} failed mid-command: {reason}; what had committed "
                "is kept: if the server went away, run the command again once it is up"
            ) from None
        raise click.ClickException(
            f"cannot reach database {redact(url)}: {reason}; check the URL and that the server is up"
        ) from None


@asynccontextmanager
async def opened_storage(
    url: str | None, *, worker_id: str = "cli", pool: PoolOptions | None = None
) -> AsyncIterator[SqlStorage]:
    """The SQL ports, ready to use (the embedded SQLite default migrates itself)."""
    from wfc.runtime.adapters.sql import default_url, open_storage

    target = url or default_url()
    try:
        storage = open_storage(target, worker_id=worker_id, pool=pool)
    except OSError as error:  # the SQLite file's directory cannot be made (read-only, a file)
        raise click.ClickException(
            f"cannot create the database at {target}: {error.strerror or error} "
            f"({error.filename or ''}); pass --db, or set `database` in the project file"
        ) from None
    try:
        with database_errors(target):
            await storage.prepare()
        with database_errors(target, connected=True):
            yield storage
    finally:
        await storage.close()


def load_source(source: str) -> WorkflowMap:
    """The workflow of one source; a `.wf` file is compiled first unless nothing it read
    or wrote changed since its last compile (`wfc.build_stamps`): only changed files are
    written, and its diagnostics end the command with exit 1."""
    from wfc.build_stamps import up_to_date
    from wfc.runtime.registry import WorkflowMap, load_plan_path, load_registry

    path = Path(source)
    if path.suffix == ".wf" or path.name.endswith((".wf.yaml", ".wf.yml")):
        out_dir = up_to_date(path) or _compiled(path)
        return WorkflowMap([load_plan_path(out_dir)])
    return load_registry([source])


def _compiled(path: Path) -> Path:
    """`path` compiled, its package's directory; its diagnostics end the command, exit 1."""
    from wfc.cli.diagnostics_output import emit
    from wfc.compiler import compile_path

    result = compile_path(path)
    if not result.ok or result.out_dir is None:
        emit(result.diagnostics, "text", sys.stderr)
        sys.exit(1)
    return result.out_dir


def load_workflows(
    sources: Sequence[str],
    *,
    default_stage_timeout: timedelta | None = timedelta(seconds=DEFAULT_STAGE_TIMEOUT_SECONDS),
) -> WorkflowMap:
    """Every workflow of `sources`, each stage without a timeout of its own given
    `default_stage_timeout` (see `with_default_stage_timeout`); a load error is one line."""
    from wfc.errors import WfcError
    from wfc.runtime.hosts.wiring import with_default_stage_timeout
    from wfc.runtime.registry import WorkflowMap

    registry = WorkflowMap()
    try:
        for source in sources:
            for workflow_id in (loaded := load_source(source)).ids():
                workflow = loaded.get(workflow_id)
                assert workflow is not None
                registry.add(with_default_stage_timeout(workflow, default_stage_timeout))
    except (WfcError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    return registry


def kernel_for(
    storage: SqlStorage, registry: WorkflowMap | None = None, plugins: Sequence[Plugin] = ()
) -> Kernel:
    from wfc.runtime.hosts import make_kernel
    from wfc.runtime.registry import WorkflowMap

    return make_kernel(storage, registry or WorkflowMap(), plugins=plugins)


def load_plugins(specs: Sequence[str]) -> list[Plugin]:
    """The plugins `--plugin module:object` names, in order; a usage error (exit 2, one
    line) for a spec that does not import or does not hold plugins."""
    import importlib

    from wfc.runtime.plugins import Plugin

    plugins: list[Plugin] = []
    for spec in specs:
        module_name, _, name = spec.partition(":")
        if not module_name or not name:
            raise click.UsageError(f"--plugin {spec!r}: write it as module:object")
        if os.getcwd() not in sys.path:  # the user's own modules, as `python -m` finds them
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise click.UsageError(
                f"--plugin {spec!r}: cannot import {module_name}: {error}"
            ) from None
        found = getattr(module, name, None)
        if found is None:
            raise click.UsageError(f"--plugin {spec!r}: {module_name} has no {name!r}")
        if callable(found) and not isinstance(found, Plugin):
            found = found()
        listed = list(found) if isinstance(found, list | tuple) else [found]
        wrong = [type(item).__name__ for item in listed if not isinstance(item, Plugin)]
        if wrong or not listed:
            raise click.UsageError(
                f"--plugin {spec!r}: expected a Plugin (define_plugin), a list of them or a "
                f"function returning either, got {', '.join(wrong) or 'an empty list'}"
            )
        plugins.extend(listed)
    ids = [plugin.id for plugin in plugins]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise click.UsageError(f"--plugin: plugin ids given twice: {', '.join(twice)}")
    return plugins


def parse_json_option(value: str | None, option: str) -> dict[str, Any]:
    """A JSON object given inline or as `@path`; bad JSON is a usage error (exit 2)."""
    from wfc.cli.json_input import read_json_object

    return read_json_object(value, option)


def refuse_input(error: InvalidRunInputError) -> NoReturn:
    """Print the fields that failed and exit 2: nothing was created."""
    click.echo(f"error: invalid input for workflow {error.workflow_id}:", err=True)
    for problem in error.problems:
        click.echo(f"  - {problem}", err=True)
    click.echo("no run was created", err=True)
    sys.exit(EXIT_USAGE)


def refused(error: Exception) -> click.ClickException:
    """The one line a refused command ends with: exit 2 for input, config or a command's
    own values (nothing was created), exit 1 for a refusal of the database's state."""
    from pydantic import ValidationError

    from wfc.errors import ConfigValidationError, InvalidRunInputError
    from wfc.runtime.run_ids import RunIdError

    if isinstance(error, InvalidRunInputError):
        refuse_input(error)
    if isinstance(error, RunIdError):  # not one run: bad input; no run there: refused
        message = str(error)
        return (
            AmbiguousRunId(message)
            if error.exit_code == EXIT_USAGE
            else click.ClickException(message)
        )
    if isinstance(error, ConfigValidationError):
        return ConfigRefused(error)
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return ConfigRefused(f"{where}: {first['msg'].removeprefix('Value error, ')}")
    return click.ClickException(str(error))


class AmbiguousRunId(click.ClickException):
    """A run id prefix that names more than one run, or is too short to: exit 2."""

    exit_code = EXIT_USAGE


class ConfigRefused(click.ClickException):
    """Run config, or a command value, that is refused: one line, exit 2 (no run created)."""

    exit_code = EXIT_USAGE

    def __init__(self, error: Exception | str) -> None:
        super().__init__(f"{error}; no run was created")


def run_leaving_threads(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` (Ctrl-C cancels `main`, whose cleanup runs) without its final wait for
    executor threads: a stage abandoned by a timeout or a stop may never return. Runs on
    uvloop where it is installed (see `wfc.runtime.hosts.event_loop`)."""
    import asyncio

    from wfc.runtime.hosts.event_loop import loop_factory

    runner = asyncio.Runner(loop_factory=loop_factory())
    try:
        return runner.run(main)
    finally:
        loop = runner.get_loop()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # shuts the default executor down without waiting for its threads


def exit_leaving_threads(code: int) -> NoReturn:
    """Exit now, even if a thread still runs stage code (its job was released or failed)."""
    if threading.active_count() > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run_json(run: RunRecord) -> dict[str, Any]:
    """A run as the `--json` options print it (`wfc run`, `wfc runs list|show`)."""
    return {
        "run_id": run.id,
        "workflow_id": run.workflow_id,
        "plan_fingerprint": run.plan_fingerprint,
        "status": run.status.value,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "completed_at": run.completed_at.isoformat() if run.completed_at else None,
        "duration_ms": run.duration_ms,
        "input": run.input,
        "output": run.output,
        "error": run.error,
        "total_cost": run.total_cost,
        "total_tokens": run.total_tokens,
        "parent_run_id": run.parent_run_id,
        "parent_stage_id": run.parent_stage_id,
    }


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))
