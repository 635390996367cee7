"""`wfc db upgrade` and `wfc db current`: the database schema, migrated by Alembic."""

from __future__ import annotations

import click

from wfc.cli.session import database_errors, db_option, require_existing


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


url_alias = click.option(
    "--url", "alias_url", default=None, hidden=True, help="Former name of --db (still taken)."
)


def _target(db_url: str, alias_url: str | None) -> str:
    """--db's database, or the one the hidden --url names."""
    from wfc.cli.project import database_url

    return db_url if alias_url is None else database_url(alias_url, None, "--url")


@db_group.command("upgrade")
@db_option
@url_alias
def upgrade_command(db_url: str, alias_url: str | None) -> None:
    """Create the database, or apply every migration this wfc ships (never drops data)."""
    from wfc.runtime.adapters.sql import migrate, redact

    target = _target(db_url, alias_url)
    revision = _run(target, "upgrade")
    click.echo(f"{redact(target)} is at revision {revision} (head {migrate.head_revision()})")


@db_group.command("current")
@db_option
@url_alias
def current_command(db_url: str, alias_url: str | None) -> None:
    """Show which database the command line and project file choose, its schema revision
    and the one this wfc needs."""
    from wfc.runtime.adapters.sql import migrate, redact

    target = require_existing(_target(db_url, alias_url))
    revision = _run(target, "current")
    head = migrate.head_revision()
    state = "up to date" if revision == head else "needs `wfc db upgrade`"
    click.echo(f"{redact(target)}: revision {revision}, this wfc needs {head} ({state})")
