"""The reserved sets of `wfc.compiler.reserved` cover what the generated code really uses.

The sets are written out by hand, so that `wfc check` does not render a package to
know them; these tests render packages that take every branch of the templates and
read the names back out of the generated Python, so a template that starts to
import or read a new name fails here until the set has it.
"""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
from pathlib import Path

from wfc.compiler import model
from wfc.compiler.checks.names import RESERVED_FIELD_NAMES, RESERVED_STAGE_IDS
from wfc.compiler.codegen import render_package, render_stubs, stage_views
from wfc.compiler.driver import analyse
from wfc.compiler.lower import lower
from wfc.compiler.reserved import (
    GENERATED_BUILTINS,
    GENERATED_MODULE_NAMES,
    STDLIB_MODULES,
    THIRD_PARTY_MODULES,
)
from wfc.runtime import CheckContext, StageContext

ROOT = Path(__file__).resolve().parents[2]

EVERY_BRANCH = """\
workflow every_branch {
  enum Level { low, high }
  type Page { url: url, at: datetime, day: date?, who: email, file: blob, extra: json = {"a": [1]} }
  signal approve { ok: bool }
  input { pages: list[Page], texts: list[str] (len >= 1), level: Level = low, n: int (0 .. 10) = 3 }
  output { total: int }
  stage split {
    output { pages: list[Page], words: list[str], levels: list[Level] }
    config { k: int = 1 }
  }
  stage each_page { map split.pages, at most 4 at once, on failure continue  output { n: int } }
  stage each_word { input str  map split.words  output { n: int } }
  stage each_level { input Level  map split.levels  output { n: int } }
  async stage poll_it { input none  needs split, each_page  output { n: int }  poll every 1m }
  stage approval { wait for approve, timeout 1d, on timeout continue }
  stage total {
    input none
    needs poll_it, each_word, each_level, approval?
    output { total: int }
  }
  flow split -> [each_page, each_word, each_level] -> poll_it -> approval -> total
}
"""


def _workflows(tmp_path: Path) -> list[model.WorkflowModel]:
    """The examples and a workflow that takes every branch of the templates."""
    (tmp_path / "every_branch.wf").write_text(EVERY_BRANCH, encoding="utf-8")
    sources = [tmp_path / "every_branch.wf", *sorted((ROOT / "examples").rglob("*.wf"))]
    found = []
    for source in sources:
        checked, diagnostics = analyse(source)
        if checked is not None:
            found.append(checked)
        else:
            assert "every_branch" not in source.name, diagnostics
    assert len(found) >= 4
    return found


def _own_names(wf: model.WorkflowModel) -> set[str]:
    """The classes a package defines for the workflow's own types, enums and stages."""
    names = {e.name for e in wf.enums} | {r.name for r in wf.records}
    names |= {wf.input.name, wf.output.name}
    names |= {s.payload.name for s in wf.signals}
    for stage in wf.stages:
        names |= {stage.input.name, stage.output.name, stage.config.name}
    for view in stage_views(wf):
        names |= {view.class_name + s for s in ("Context", "Stage", "CheckContext")}
        names.add(view.class_name)  # the stub's class
    return names


def _module_names(text: str) -> tuple[set[str], set[str]]:
    """What a module binds at module level, and the names it reads that it never binds."""
    tree = ast.parse(text)
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ClassDef | ast.FunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {t.id for t in targets if isinstance(t, ast.Name)}
    everywhere = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    # (Annotations are parsed as expressions too: `from __future__` changes only run time.)
    locals_ = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    locals_ |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    # `__all__` and the like: no name of a workflow starts with `_`.
    bound = {n for n in bound if not n.startswith("_")}
    free = {n for n in everywhere - bound - locals_ if not n.startswith("_")}
    return bound, free


def test_every_module_level_name_of_the_templates_is_reserved(tmp_path: Path) -> None:
    seen_bound: set[str] = set()
    seen_builtins: set[str] = set()
    for wf in _workflows(tmp_path):
        files = {**render_package(wf, lower(wf)), **render_stubs(wf)}
        own = _own_names(wf)
        for rel, text in files.items():
            if not rel.endswith(".py"):
                continue
            bound, free = _module_names(text)
            assert bound - own <= GENERATED_MODULE_NAMES, (rel, bound - own)
            read_builtins = free & set(dir(builtins))
            assert read_builtins <= GENERATED_BUILTINS, (rel, read_builtins)
            assert free - read_builtins - own <= GENERATED_MODULE_NAMES, rel
            seen_bound |= bound - own
            seen_builtins |= read_builtins
    # The workflow above takes every branch: every reserved name is really used somewhere,
    # so the sets hold no stale entry either.
    assert seen_bound == GENERATED_MODULE_NAMES, GENERATED_MODULE_NAMES - seen_bound
    assert seen_builtins <= GENERATED_BUILTINS


def test_every_member_of_a_stage_context_is_a_reserved_stage_id() -> None:
    for context in (StageContext, CheckContext):
        public = {n for n in dir(context) if not n.startswith("_")}
        assert public <= RESERVED_STAGE_IDS, public - RESERVED_STAGE_IDS


def test_field_names_cannot_hide_what_the_models_read() -> None:
    assert GENERATED_MODULE_NAMES | GENERATED_BUILTINS <= RESERVED_FIELD_NAMES


def test_every_module_wfc_imports_is_a_reserved_workflow_id() -> None:
    """A package named like a module `wfc run` has already imported is never loaded: the
    import finds that module. Import everything a worker and the CLI load, in a fresh
    interpreter, and check each top-level module is reserved."""
    code = (
        "import sys, wfc.cli, wfc.runtime, wfc.compiler.driver, wfc.web.app\n"
        "import wfc.runtime.adapters.sql, asyncpg, aiosqlite, uvicorn\n"
        "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    names = {n for n in out.stdout.split() if n[:1].isalpha()}
    missing = {n for n in names if n.lower() not in STDLIB_MODULES | THIRD_PARTY_MODULES}
    assert not missing, sorted(missing)
