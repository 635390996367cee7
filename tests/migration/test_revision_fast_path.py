"""Opening a database at the newest revision reads its revision table and nothing more:
`HEAD_REVISION` is Alembic's head, `at_head` tells each case apart, and Alembic is not
imported for a database that needs no migration."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.engine import create_engine
from wfc.runtime.adapters.sql.migrate import _config, head_revision, upgrade
from wfc.runtime.adapters.sql.revision import HEAD_REVISION, at_head


def test_the_head_written_in_the_code_is_the_newest_migration() -> None:
    assert HEAD_REVISION == head_revision()


async def test_at_head_only_at_the_newest_revision(empty_engine: AsyncEngine) -> None:
    assert not await at_head(empty_engine)  # never migrated: no revision table
    await upgrade(empty_engine, "0015")
    assert not await at_head(empty_engine)
    await upgrade(empty_engine)
    assert await at_head(empty_engine)

    def down(connection: Connection) -> None:
        command.downgrade(_config(connection), "0015")

    async with empty_engine.begin() as conn:
        await conn.run_sync(down)
    assert not await at_head(empty_engine)


def _alembic_imported_by_opening(database: Path) -> bool:
    """Whether a fresh interpreter imports Alembic to open (and prepare) `database`."""
    script = (
        "import asyncio, sys\n"
        "from wfc.runtime.adapters.sql import open_storage\n"
        "async def main():\n"
        f"    storage = open_storage('sqlite+aiosqlite:///{database}')\n"
        "    await storage.prepare()\n"
        "    await storage.close()\n"
        "asyncio.run(main())\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_an_up_to_date_database_opens_without_alembic(tmp_path: Path) -> None:
    database = tmp_path / "wfc.db"
    assert not _alembic_imported_by_opening(database)  # a new file: the kept schema
    asyncio.run(_downgrade(database, "0015"))
    assert _alembic_imported_by_opening(database)  # an older file: migrated, by Alembic
    assert not _alembic_imported_by_opening(database)  # at the head now: one read


async def _downgrade(database: Path, revision: str) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")

    def down(connection: Connection) -> None:
        command.downgrade(_config(connection), revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(down)
    finally:
        await engine.dispose()
