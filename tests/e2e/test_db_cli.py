"""`wfc db upgrade` / `wfc db current` on a real SQLite file, and an unreachable or lost server."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.databases import postgres_database
from wfc.cli import cli
from wfc.cli.session import opened_storage
from wfc.runtime.adapters.sql import migrate, redact
from wfc.runtime.adapters.sql.migrate import head_revision


def test_upgrade_then_current(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    runner = CliRunner()
    before = runner.invoke(cli, ["db", "current", "--url", url])
    assert before.exit_code == 1, before.output  # a read: the file is not created
    assert f"no wfc database at {tmp_path / 'wfc.db'}; run `wfc db upgrade`" in before.output
    assert not (tmp_path / "wfc.db").exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    unmigrated = runner.invoke(cli, ["db", "current", "--db", str(empty)])
    assert unmigrated.exit_code == 0 and "revision none" in unmigrated.output
    assert "needs `wfc db upgrade`" in unmigrated.output
    upgraded = runner.invoke(cli, ["db", "upgrade", "--url", url])
    assert upgraded.exit_code == 0 and f"revision {head_revision()}" in upgraded.output
    after = runner.invoke(cli, ["db", "current"], env={"WFC_DATABASE_URL": url})
    assert "(up to date)" in after.output


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    result = CliRunner().invoke(
        cli, ["db", "current", "--url", "postgresql://app:s3cret@127.0.0.1:1/wfc"]
    )
    assert result.exit_code == 1
    assert "cannot reach database postgresql://app:***@127.0.0.1:1/wfc" in result.output
    assert "s3cret" not in result.output and "Traceback" not in result.output


async def test_a_database_lost_mid_command_is_one_line_too() -> None:
    """The server going away after the command connected (a restart) ends it with one line
    naming the database, as an unreachable one does, not a driver traceback."""
    async with postgres_database(empty=True) as url:
        admin = create_async_engine(url, poolclass=NullPool)
        await migrate.upgrade(admin)
        with pytest.raises(click.ClickException) as raised:
            async with opened_storage(url) as storage:
                await storage.persistence.list_runs()
                async with admin.connect() as conn:
                    await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                async with storage.persistence.transaction() as tx:  # on the dropped connection
                    await tx.list_runs()
        await admin.dispose()
    assert "failed mid-command" in raised.value.message
    assert redact(url) in raised.value.message
