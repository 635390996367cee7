"""The CLI through click's runner, through the installed `wfc`, and bad inputs of every kind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import EXAMPLES
from wfc.cli import cli

DOCS = EXAMPLES / "documents" / "pipeline.wf"
WFC = Path(sys.executable).parent / "wfc"


def test_compile_writes_package_and_keeps_stubs(tmp_path: Path) -> None:
    source = tmp_path / "pipeline.wf"
    shutil.copy(DOCS, source)
    runner = CliRunner()
    result = runner.invoke(cli, ["compile", str(source)])
    assert result.exit_code == 0, result.output
    stub = tmp_path / "document_processor" / "stages" / "extract.py"
    stub.write_text(stub.read_text() + "\n# my edit\n")
    assert runner.invoke(cli, ["compile", str(source)]).exit_code == 0
    assert stub.read_text().endswith("# my edit\n")
    assert runner.invoke(cli, ["compile", str(source), "--check"]).exit_code == 0


def test_compile_check_lists_stale_files(tmp_path: Path) -> None:
    source = tmp_path / "pipeline.wf"
    shutil.copy(DOCS, source)
    runner = CliRunner()
    runner.invoke(cli, ["compile", str(source)])
    source.write_text(
        source.read_text().replace("max_length: int (> 0) = 50000", "max_length: int (> 0) = 9")
    )
    result = runner.invoke(cli, ["compile", str(source), "--check"])
    assert result.exit_code == 1
    assert "_models.py" in result.output and "plan.json" in result.output


def test_check_reports_stub_that_no_longer_fits(tmp_path: Path) -> None:
    source = tmp_path / "pipeline.wf"
    shutil.copy(DOCS, source)
    runner = CliRunner()
    runner.invoke(cli, ["compile", str(source)])
    stub = tmp_path / "document_processor" / "stages" / "summarize.py"
    stub.write_text(stub.read_text().replace("SummarizeStage)", "object)"))
    result = runner.invoke(cli, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "WF352" in result.output and "summarize.py" in result.output


def test_check_formats(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wf"
    bad.write_text("workflow w { input { a: strr } stage s { } flow s }\n")
    runner = CliRunner()
    as_json = runner.invoke(cli, ["check", "--format", "json", str(bad)])
    assert as_json.exit_code == 1
    data = json.loads(as_json.output)
    assert data[0]["code"] == "WF201" and data[0]["location"]["line"] == 1
    github = runner.invoke(cli, ["check", "--format", "github", str(bad)])
    assert github.output.startswith("::error title=WF201,file=")
    text = runner.invoke(cli, ["check", str(bad)])
    assert "^^^^" in text.output and "did you mean `str`?" in text.output


def test_usage_error_exits_2() -> None:
    assert CliRunner().invoke(cli, ["check"]).exit_code == 2


def test_graph_mermaid_and_dot() -> None:
    runner = CliRunner()
    mermaid = runner.invoke(cli, ["graph", str(DOCS)])
    assert mermaid.exit_code == 0 and "extract --> score_chunks" in mermaid.output
    assert "map over extract.chunks, ≤8" in mermaid.output
    dot = runner.invoke(cli, ["graph", "--format", "dot", str(DOCS)])
    assert '"score_chunks" -> "keywords";' in dot.output
    assert '"extract" -> "keywords" [style=dashed];' in dot.output


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("empty.wf", b"", "WF114"),
        ("binary.wf", b"\x00\x01\x02workflow", "WF112"),
        ("latin1.wf", "workflow caf\xe9 {}".encode("latin-1"), "WF112"),
        ("huge.wf", b"# " + b"x" * (5 * 1024 * 1024), "WF113"),
        (
            "deep.wf",
            ("workflow w { input { a: " + "list[" * 200 + "int" + "]" * 200 + " } }").encode(),
            "WF304",
        ),
    ],
)
def test_bad_files_get_one_clear_diagnostic(
    tmp_path: Path, name: str, content: bytes, code: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["check", "--format", "json", str(path)])
    assert result.exit_code == 1, result.output
    assert code in [d["code"] for d in json.loads(result.output)]
    assert "Traceback" not in result.output


def test_missing_file_and_directory(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["compile", str(tmp_path / "nope.wf")])
    assert missing.exit_code == 1 and "WF110" in missing.output
    directory = runner.invoke(cli, ["compile", str(tmp_path)])
    assert directory.exit_code == 1 and "WF111" in directory.output


def test_installed_console_script(tmp_path: Path) -> None:
    shutil.copy(DOCS, tmp_path / "pipeline.wf")
    done = subprocess.run(
        [str(WFC), "compile", "pipeline.wf"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "document_processor" / "plan.json").exists()
    bad = subprocess.run(
        [str(WFC), "check", "nope.wf"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and "file not found" in bad.stdout


@pytest.mark.slow
def test_built_wheel_ships_grammar_and_templates(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dist), str(root)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("wfc-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Dependencies come from this environment's site-packages (a plain path entry, so its
    # editable install of wfc is not picked up); wfc itself must come from the wheel.
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and p.is_dir())
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(str(deps) + "\n")
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
    )
    shutil.copy(DOCS, tmp_path / "pipeline.wf")
    code = "import wfc, sys; print(wfc.__file__)"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in where.stdout
    done = subprocess.run(
        [str(venv / "bin" / "wfc"), "compile", "pipeline.wf"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "document_processor" / "_stages.py").exists()
