"""`wfc db upgrade` and `wfc db current`: the database schema, migrated by Alembic."""

from __future__ import annotations

import click

from wfc.cli.session import URL_HELP, database_errors


@click.group("db")
def db_group() -> None:
    """Inspect and migrate the runtime database."""


def _run(url: str, action: str) -> str:
    import asyncio

    from wfc.runtime.adapters.sql import migrate
    from wfc.runtime.adapters.sql.engine import create_engine

    async def go() -> str:
        engine = create_engine(url)
        try:
            if action == "upgrade":
                await migrate.upgrade(engine)
            current = await migrate.current_revision(engine)
        finally:
            await engine.dispose()
        return current or "none"

    with database_errors(url):
        return asyncio.run(go())


@db_group.command("upgrade")
@click.option("--url", envvar="WFC_DATABASE_URL", default=None, help=URL_HELP)
def upgrade_command(url: str | None) -> None:
    """Apply every migration this wfc ships (never drops data)."""
    from wfc.runtime.adapters.sql import default_url, migrate, redact

    target = url or default_url()
    revision = _run(target, "upgrade")
    click.echo(f"{redact(target)} is at revision {revision} (head {migrate.head_revision()})")


@db_group.command("current")
@click.option("--url", envvar="WFC_DATABASE_URL", default=None, help=URL_HELP)
def current_command(url: str | None) -> None:
    """Show the database's schema revision and the one this wfc needs."""
    from wfc.runtime.adapters.sql import default_url, migrate, redact

    target = url or default_url()
    revision = _run(target, "current")
    head = migrate.head_revision()
    state = "up to date" if revision == head else "needs `wfc db upgrade`"
    click.echo(f"{redact(target)}: revision {revision}, this wfc needs {head} ({state})")
