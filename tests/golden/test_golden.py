"""Golden tests: every example and golden case compiles to exactly its committed package; bad inputs give exactly their diagnostics.

A case under `cases/` with an `expected/` directory must compile: its whole
package (stubs too), its `wfc graph` output in both formats and its warnings
(`diagnostics.txt`, when it has any) are compared. A case without one must
fail with exactly its `diagnostics.txt`. `pytest --update-golden` rewrites the
expected files; review them as a diff.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, GOLDEN
from wfc.compiler import compile_path
from wfc.compiler.diagnostics import render_text
from wfc.compiler.graph_render import to_dot, to_mermaid

EXAMPLE_SOURCES = sorted(
    p for p in EXAMPLES.glob("*/*.wf") if re.search(r"^workflow ", p.read_text(), re.M)
)
CASES = sorted(p.parent for p in GOLDEN.glob("*/input.wf") if not (p.parent / "expected").is_dir())
COMPILED_CASES = sorted(p.parent for p in GOLDEN.glob("*/expected"))
GENERATED = ("__init__.py", "_models.py", "_stages.py", "plan.json", "stages/__init__.py")


@pytest.mark.parametrize("source", EXAMPLE_SOURCES, ids=lambda p: p.parent.name)
def test_example_is_freshly_generated(source: Path, tmp_path: Path) -> None:
    result = compile_path(source, tmp_path / "out")
    assert result.ok, render_text(result.diagnostics)
    assert result.workflow is not None
    committed = source.parent / result.workflow.id
    for rel in GENERATED:
        assert (tmp_path / "out" / rel).read_text() == (committed / rel).read_text(), (
            f"{committed / rel} is stale: run `wfc compile {source}`"
        )
    assert compile_path(source, check=True).stale == []


@pytest.mark.parametrize("source", EXAMPLE_SOURCES, ids=lambda p: p.parent.name)
def test_compilation_is_deterministic(source: Path, tmp_path: Path) -> None:
    first = compile_path(source, tmp_path / "a")
    second = compile_path(source, tmp_path / "b")
    for rel in GENERATED:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert first.plan is not None and second.plan is not None
    assert first.plan.fingerprint == second.plan.fingerprint


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_bad_input_diagnostics(
    case: Path, update_golden: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / case.name
    shutil.copytree(case, work)
    monkeypatch.chdir(tmp_path)
    result = compile_path(Path(case.name) / "input.wf", check=True)
    rendered = render_text(result.diagnostics)
    expected = case / "diagnostics.txt"
    if update_golden:
        expected.write_text(rendered)
    assert not result.ok
    assert rendered == expected.read_text()


@pytest.mark.parametrize("case", COMPILED_CASES, ids=lambda p: p.name)
def test_compiled_case_matches_its_expected_tree(
    case: Path, update_golden: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / case.name
    work.mkdir()
    for source in case.glob("*.wf"):  # `input.wf` and the files it imports
        shutil.copy(source, work / source.name)
    monkeypatch.chdir(tmp_path)
    result = compile_path(Path(case.name) / "input.wf", work / "out")
    assert result.ok and result.plan is not None, render_text(result.diagnostics)
    produced = {
        p.relative_to(work / "out").as_posix(): p.read_text()
        for p in [*sorted((work / "out").rglob("*.py")), work / "out" / "plan.json"]
    }
    produced["graph.mmd"] = to_mermaid(result.plan)
    produced["graph.dot"] = to_dot(result.plan)
    if result.diagnostics:
        produced["diagnostics.txt"] = render_text(result.diagnostics)
    expected_dir = case / "expected"
    if update_golden:
        shutil.rmtree(expected_dir)
        for rel, text in produced.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_text(text)
    expected = {
        p.relative_to(expected_dir).as_posix(): p.read_text()
        for p in sorted(expected_dir.rglob("*"))
        if p.is_file()
    }
    assert sorted(produced) == sorted(expected)
    for rel, text in produced.items():
        assert text == expected[rel], f"{case.name}/expected/{rel} differs"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


TYPED_SOURCES = EXAMPLE_SOURCES + [case / "input.wf" for case in COMPILED_CASES]


def _package_dir(source: Path) -> str:
    return f"pkg_{source.parent.name}"


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Every example and compiled case generated side by side, and what one `mypy --strict`
    over them all printed: one run instead of one per package, since most of each run is
    mypy reading pydantic and the standard library again."""
    root = tmp_path_factory.mktemp("typed")
    for source in TYPED_SOURCES:
        assert compile_path(source, root / _package_dir(source)).ok
    types = _run(
        "mypy", "--strict", "--no-incremental", *map(_package_dir, TYPED_SOURCES), cwd=root
    )
    return root, types.stdout + types.stderr


@pytest.mark.parametrize("source", TYPED_SOURCES, ids=lambda p: p.parent.name)
def test_generated_code_passes_ruff_and_mypy_strict(source: Path, typed: tuple[Path, str]) -> None:
    root, mypy_output = typed
    package = _package_dir(source)
    lint = _run(
        "ruff",
        "check",
        "--isolated",
        "--select",
        "E,F,W,I,UP,B",
        "--ignore",
        "E501",
        package,
        cwd=root,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run("ruff", "format", "--isolated", "--check", package, cwd=root)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    errors = [line for line in mypy_output.splitlines() if line.startswith(f"{package}/")]
    assert not errors, "\n".join(errors)
    assert "Success: no issues found" in mypy_output or "error:" in mypy_output, mypy_output
