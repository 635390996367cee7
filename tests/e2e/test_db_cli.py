"""`wfc db upgrade` / `wfc db current` on a real SQLite file, and an unreachable server."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from wfc.cli import cli
from wfc.runtime.adapters.sql.migrate import head_revision


def test_upgrade_then_current(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    runner = CliRunner()
    before = runner.invoke(cli, ["db", "current", "--url", url])
    assert before.exit_code == 0 and "revision none" in before.output
    assert "needs `wfc db upgrade`" in before.output
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
