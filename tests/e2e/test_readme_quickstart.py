"""The README's quickstart, run as a newcomer runs it: the file, the compile, the two stubs, the runs.

Everything is read from README.md itself (the heredoc, the stub bodies, the output shown), so
the quickstart cannot drift from what `wfc` does without this test failing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

from tests.conftest import ROOT
from tests.doc_blocks import blocks
from tests.e2e.workers import wfc

README = ROOT / "README.md"


def _quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]


def _fill_stub(stub: Path, body: str) -> None:
    """Put the README's `execute` in place of the generated one (the rest of the stub stays)."""
    text = stub.read_text(encoding="utf-8")
    start = text.index("    def execute(")
    stub.write_text(text[:start] + body, encoding="utf-8")


def test_the_quickstart_of_the_readme_runs_as_written(tmp_path: Path) -> None:
    section = _quickstart()
    hello = re.search(r"cat > hello\.wf <<'WF'\n(.*?)\nWF\n", section, flags=re.S)
    assert hello is not None
    (tmp_path / "hello.wf").write_text(hello[1] + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "WFC_DATABASE_URL"}

    compiled = wfc("compile", "hello.wf", env=env, cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr

    bodies = [b.body for b in blocks(README) if b.language == "python" and b.body in section]
    for stage, body in zip(("greet", "shout"), bodies, strict=True):
        assert f"def execute(self, ctx: {stage.capitalize()}Context)" in body
        _fill_stub(tmp_path / "hello" / "stages" / f"{stage}.py", body)

    run = wfc("run", "hello.wf", "--input", '{"name": "Ada"}', env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    shown = re.search(r"✔ run .*\n(\{.*?\n\})\n", section, flags=re.S)
    assert shown is not None
    assert json.loads(run.stdout) == json.loads(shown[1])
    assert (tmp_path / ".wfc" / "wfc.db").is_file()

    listed = wfc("runs", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0 and "hello" in listed.stdout, listed.stderr

    refused = wfc("run", "hello.wf", "--input", '{"name": ""}', env=env, cwd=tmp_path)
    assert refused.returncode == 2  # as the README says
    for line in ("invalid input for workflow hello:", "name: String should have at least 1"):
        assert line in section and line in refused.stderr + refused.stdout
    assert "no run was created" in refused.stderr + refused.stdout


def test_the_first_of_the_two_commands_runs_its_example(tmp_path: Path) -> None:
    """The `wfc run` the README's first command ends with, in a copy of the example."""
    text = README.read_text(encoding="utf-8")
    first = re.search(r"&& \.venv/bin/wfc (run .*)$", text, flags=re.M)
    assert first is not None
    shutil.copytree(ROOT / "examples" / "documents", tmp_path / "examples" / "documents")
    env = {k: v for k, v in os.environ.items() if k != "WFC_DATABASE_URL"}
    result = wfc(*shlex.split(first[1]), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "summary" in json.loads(result.stdout)
