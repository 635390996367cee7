"""`wfc run FILE.wf` compiles only when something moved since its last compile: an
unchanged project runs without importing the compiler, and an edit (to the file or to a
stage's code) is compiled, and refused, as before."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "documents"
INPUT = '{"document": "Great product. I love it."}'


def _run(project: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("WFC_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, *flags, "-m", "wfc", "run", "pipeline.wf", "--input", INPUT],
        capture_output=True, text=True, cwd=project, env=env, timeout=120, check=False,
    )  # fmt: skip


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "documents"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def _compiler_imported(run: subprocess.CompletedProcess[str]) -> bool:
    return any(line.endswith("| wfc.compiler") for line in run.stderr.splitlines())


def test_an_unchanged_project_runs_without_the_compiler(tmp_path: Path) -> None:
    project = _project(tmp_path)
    first = _run(project, "-X", "importtime")
    assert first.returncode == 0, first.stderr
    assert _compiler_imported(first)  # no stamp yet: compiled
    second = _run(project, "-X", "importtime")
    assert second.returncode == 0, second.stderr
    assert not _compiler_imported(second)


def test_an_edit_after_a_run_is_compiled_and_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert _run(project).returncode == 0
    source = project / "pipeline.wf"
    source.write_text(source.read_text().replace("needs extract, sentiment\n", "needs nothing\n"))
    edited = _run(project)
    assert edited.returncode == 1
    assert "pipeline.wf:" in edited.stderr and "nothing" in edited.stderr


def test_a_stage_edited_to_no_longer_fit_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert _run(project).returncode == 0
    stub = project / "document_processor" / "stages" / "keywords.py"
    stub.write_text(stub.read_text().replace("KeywordsContext", "NoSuchContext"))
    edited = _run(project)
    assert edited.returncode == 1, edited.stderr
    assert "keywords.py" in edited.stderr
