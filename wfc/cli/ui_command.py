"""`wfc ui`: the web dashboard over the database the workers use.

Starlette and uvicorn come with the optional `ui` extra; without them the
command says how to install it, in one line. They and the runtime are
imported inside the command, so `wfc --help` stays light.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import click

from wfc.cli.project import plans_or_project
from wfc.cli.session import db_option, kernel_for, load_workflows, opened_storage

if TYPE_CHECKING:
    from wfc.runtime.kernel import Kernel

TOKEN_VARIABLE = "WFC_UI_TOKEN"
MISSING_EXTRA = "wfc ui needs the 'ui' extra: pip install 'wfc[ui]' (Starlette and uvicorn)"


@click.command("ui")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--allow-actions",
    is_flag=True,
    help=f"Let the dashboard cancel and rerun runs (read-only otherwise; or set {TOKEN_VARIABLE} "
    "to require a token on each action).",
)
@click.option(
    "--plan",
    "plans",
    multiple=True,
    callback=lambda _ctx, _param, given: plans_or_project(given, required=False),
    help="Workflows to rerun runs of: a .wf file, package directory, plan.json or package "
    "name (repeatable; default: `plans` in the project file; without any, rerun is not "
    "offered).",
)
def ui_command(
    db_url: str | None, host: str, port: int, allow_actions: bool, plans: tuple[str, ...]
) -> None:
    """Serve the dashboard: runs, a run's stages live, workflows, workers."""
    try:
        import uvicorn

        from wfc.web.app import UiSettings, create_app
    except ImportError:
        raise click.ClickException(MISSING_EXTRA) from None
    registry = load_workflows(plans) if plans else None
    token = os.environ.get(TOKEN_VARIABLE) or None
    _check_database(db_url)
    settings = UiSettings(
        allow_actions=allow_actions, token=token, host=host, can_rerun=registry is not None
    )

    @asynccontextmanager
    async def open_kernel() -> AsyncIterator[Kernel]:
        async with opened_storage(db_url, worker_id="ui") as storage:
            yield kernel_for(storage, registry)

    mode = "read-only"
    if settings.actions_enabled:
        mode = "actions need the token" if token else "actions allowed"
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    click.echo(f"wfc ui: {where} ({mode}); Ctrl-C stops it")
    if host not in ("127.0.0.1", "localhost", "::1") and allow_actions and token is None:
        click.echo(
            f"warning: anyone who reaches {host}:{port} can cancel runs; set {TOKEN_VARIABLE}",
            err=True,
        )
    uvicorn.run(create_app(open_kernel, settings), host=host, port=port, log_level="warning")


def _check_database(db_url: str | None) -> None:
    """Open the database once before serving: an unreachable one, or a schema of another
    revision, is one line and exit 1 now rather than an error page later."""
    import asyncio

    async def check() -> None:
        async with opened_storage(db_url, worker_id="ui"):
            pass

    asyncio.run(check())
