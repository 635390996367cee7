"""`_stages.py` imports its models in the order ruff's isort wants: numbers naturally.

The names were `sorted()`, which puts `Step10Config` before `Step1Config`; ruff's isort
orders member names naturally (`Step1`, `Step2`, `Step10`), all-caps names first. A
workflow with stages `step2` and `step10`, which `wfc check` accepts, compiled into a
`_stages.py` that `ruff check` refused (I001): generated code promises to pass ruff.
"""

from __future__ import annotations

from pathlib import Path

from tests.ruff_runs import ruff
from wfc.compiler.driver import compile_path

NUMBERED = """workflow numbered {
  type Part2 { a: int }
  type Part10 { a: int }
  type URL2 { a: int }
  type URL10 { a: int }
  input  { x: str }
  output { y: str }
  stage step1 { input none output { p: Part2, q: Part10, r: URL2, s: URL10 } }
  stage step2 { input none output { y: str } }
  stage step10 { input none output { y: str } }
  stage step_b { input none output { y: str } }
  stage stepa { input none output { y: str } }
  flow step1 -> step2 -> step10 -> step_b -> stepa
}
"""


def test_numbered_names_are_imported_in_ruff_order(tmp_path: Path) -> None:
    source = tmp_path / "numbered.wf"
    source.write_text(NUMBERED, encoding="utf-8")
    out = tmp_path / "numbered"
    assert compile_path(source, out).ok
    lint = ruff("check", "--isolated", "--select", "I", str(out))
    assert lint.returncode == 0, lint.stdout + lint.stderr
