"""`wfc ui` as a command: light `--help`, a one-line hint without the `ui` extra, and a
one-line error for a database it cannot reach, before anything is served."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from tests.unit.test_cli_imports import loaded, modules_after
from wfc.cli import cli


def test_ui_help_imports_neither_the_web_stack_nor_the_database() -> None:
    modules = modules_after("ui", "--help")
    assert loaded(modules, ("starlette", "uvicorn", "wfc.web", "sqlalchemy", "jinja2")) == []


def test_without_the_ui_extra_the_command_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    result = CliRunner().invoke(cli, ["ui"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: wfc ui needs the 'ui' extra: pip install 'wfc[ui]' (Starlette and uvicorn)"
    )


def test_an_unreachable_database_is_one_line_before_serving() -> None:
    result = CliRunner().invoke(
        cli, ["ui", "--db", "postgresql+asyncpg://postgres:pw@127.0.0.1:1/none", "--port", "1"]
    )
    assert result.exit_code == 1
    assert "cannot reach database" in result.output and "pw" not in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
