"""A package that cannot be written is a diagnostic (WF362), not a traceback.

`wfc compile x.wf` (and `--check`, `wfc run x.wf`, `wfc worker --plan x.wf`) beside a
file named as the package, or with `-o` naming a file, ended in a `NotADirectoryError`
traceback: the CLI promises one clear error for what a user typed or left on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wfc.cli import cli
from wfc.compiler.driver import compile_path

HELLO = """workflow hello {
  input  { name: str }
  output { greeting: str }
  stage greet { input { name: str } output { greeting: str } }
  flow greet
}
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "hello.wf"
    path.write_text(HELLO, encoding="utf-8")
    return path


@pytest.mark.parametrize("check", [False, True])
def test_a_file_in_the_package_place_is_wf362(source: Path, check: bool) -> None:
    (source.parent / "hello").write_text("not a package", encoding="utf-8")
    result = compile_path(source, check=check)
    assert not result.ok
    assert [d.code for d in result.diagnostics] == ["WF362"]
    assert "Not a directory" in result.diagnostics[0].message
    assert (source.parent / "hello").read_text(encoding="utf-8") == "not a package"


def test_a_file_in_place_of_a_generated_one_is_wf362(source: Path) -> None:
    (source.parent / "hello" / "_models.py").mkdir(parents=True)
    assert [d.code for d in compile_path(source).diagnostics] == ["WF362"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("compile", "hello.wf", "-o", "taken"), id="compile -o a file"),
        pytest.param(("compile", "hello.wf"), id="compile beside a file"),
        pytest.param(("run", "hello.wf", "--input", '{"name": "x"}'), id="run"),
    ],
)
def test_the_cli_says_so_in_one_diagnostic(
    source: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(source.parent)
    monkeypatch.delenv("WFC_DATABASE_URL", raising=False)
    (source.parent / "taken").write_text("", encoding="utf-8")
    (source.parent / "hello").write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "error[WF362]" in result.output and "Traceback" not in result.output
