"""`wfc compile --check` tells tools what is stale in the format they asked for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from tests.conftest import EXAMPLES
from wfc.cli import cli

DOCS = EXAMPLES / "documents" / "pipeline.wf"


def _stale_source(tmp_path: Path) -> Path:
    source = tmp_path / "pipeline.wf"
    shutil.copy(DOCS, source)
    assert CliRunner().invoke(cli, ["compile", str(source)]).exit_code == 0
    source.write_text(
        source.read_text().replace("max_length: int (> 0) = 50000", "max_length: int (> 0) = 9")
    )
    return source


def test_compile_check_json_lists_the_stale_files(tmp_path: Path) -> None:
    source = _stale_source(tmp_path)
    result = CliRunner().invoke(cli, ["compile", str(source), "--check", "--format", "json"])
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    assert {d["code"] for d in found} == {"WF360"}
    files = {Path(d["location"]["file"]).name for d in found}
    assert {"_models.py", "plan.json"} <= files
    assert all(d["help"] and "wfc compile" in d["help"] for d in found)


def test_compile_check_github_prints_annotations(tmp_path: Path) -> None:
    source = _stale_source(tmp_path)
    result = CliRunner().invoke(cli, ["compile", str(source), "--check", "--format", "github"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("::error ") for line in lines), result.stdout
    assert all(",line=1,col=1" in line and "file=" in line for line in lines)
    assert any("_models.py" in line for line in lines)


def test_github_annotations_of_a_syntax_error_carry_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wf"
    bad.write_text("workflow w {\n  stage s { output { x int } }\n  flow s\n}\n")
    result = CliRunner().invoke(cli, ["compile", str(bad), "--check", "--format", "github"])
    assert result.exit_code == 1
    assert result.stdout.startswith("::error title=WF101,file=")
    assert ",line=2,col=24," in result.stdout
