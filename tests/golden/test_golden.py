"""Golden tests: every example compiles to exactly its committed package; bad inputs give exactly their diagnostics.

`pytest --update-golden` rewrites the expected files; review them as a diff.
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

EXAMPLE_SOURCES = sorted(
    p for p in EXAMPLES.glob("*/*.wf") if re.search(r"^workflow ", p.read_text(), re.M)
)
CASES = sorted(p.parent for p in GOLDEN.glob("*/input.wf"))
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


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("source", EXAMPLE_SOURCES, ids=lambda p: p.parent.name)
def test_generated_code_passes_ruff_and_mypy_strict(source: Path, tmp_path: Path) -> None:
    result = compile_path(source, tmp_path / "pkg")
    assert result.ok
    lint = _run(
        "ruff",
        "check",
        "--isolated",
        "--select",
        "E,F,W,I,UP,B",
        "--ignore",
        "E501",
        "pkg",
        cwd=tmp_path,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run("ruff", "format", "--isolated", "--check", "pkg", cwd=tmp_path)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    types = _run("mypy", "--strict", "--no-incremental", "pkg", cwd=tmp_path)
    assert types.returncode == 0, types.stdout + types.stderr
