"""Schema migrations (Alembic, shipped in the package) and the revision check at startup.

`upgrade(engine)` brings a database to the newest revision; it never drops
data. `check(engine)` refuses a database this version of wfc does not know
(a newer wfc migrated it, or it is not a wfc database) with one line naming
both revisions and the fix. Opening a database asks `revision.at_head` first, and
imports this module (and Alembic) only when the answer is no.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.engine import redact
from wfc.runtime.adapters.sql.revision import SchemaRevisionError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this package ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision this package ships."""
    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's revision, or None for a database wfc never migrated."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply every migration up to `revision` (refusing a database from a newer wfc)."""
    found = await current_revision(engine)
    if found is not None and found not in known_revisions():
        raise _unknown(engine, found)

    def run(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def check(engine: AsyncEngine) -> None:
    """Raise `SchemaRevisionError` unless the database is at this package's head revision."""
    found, head = await current_revision(engine), head_revision()
    if found == head:
        return
    if found is not None and found not in known_revisions():
        raise _unknown(engine, found)
    raise SchemaRevisionError(
        redact(engine.url), found, head, f"run `wfc db upgrade --url {redact(engine.url)}`"
    )


def _unknown(engine: AsyncEngine, found: str) -> SchemaRevisionError:
    return SchemaRevisionError(
        redact(engine.url),
        found,
        head_revision(),
        "it was migrated by a newer wfc (or is not a wfc database); upgrade wfc, or point --url elsewhere",
    )


def autogenerate(engine_url: str, message: str) -> Any:  # pragma: no cover - a developer tool
    """Write a new revision comparing the metadata with a database at head (for maintainers)."""
    from sqlalchemy import create_engine

    engine = create_engine(engine_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg"))
    with engine.begin() as connection:
        return command.revision(_config(connection), message=message, autogenerate=True)
