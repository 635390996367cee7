"""`wfc check` on compiled packages: stale generated files (WF360) and stubs that no longer fit
(WF350–WF356), one case per way a stub can go wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wfc.compiler.diagnostics import Severity
from wfc.compiler.driver import check_paths, compile_path

SOURCE = """workflow t {
  input { n: int }
  output { m: int }
  stage a { input { n: int } output { m: int } }
  async stage b { input { m: int } output { m: int } }
  flow a -> b
}
"""


@pytest.fixture
def package(tmp_path: Path) -> Path:
    source = tmp_path / "t.wf"
    source.write_text(SOURCE)
    result = compile_path(source)
    assert not result.diagnostics
    return tmp_path / "t"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def codes(tmp_path: Path) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in check_paths([tmp_path]).diagnostics]


def test_a_fresh_package_checks_clean(package: Path) -> None:
    assert codes(package.parent) == []


def test_edited_generated_code_is_stale(package: Path) -> None:
    edit(package / "_models.py", "class AOutput", "class AOutputRenamed")
    assert codes(package.parent) == [
        ("WF360", f"generated file is out of date: {(package / '_models.py').as_posix()}")
    ]


A = "stages/a.py"
B = "stages/b.py"
MUTATIONS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("WF350", lambda p: (p / A).unlink(), "WF350", "stub for stage `a` is missing"),
    (
        "WF351 syntax",
        lambda p: edit(p / A, "def execute", "def execute("),
        "WF351",
        "is not valid Python",
    ),
    (
        "WF351 class",
        lambda p: edit(p / A, "class A(", "class Renamed("),
        "WF351",
        "has no class `A`",
    ),
    (
        "WF352",
        lambda p: edit(p / A, "A(AStage)", "A(object)"),
        "WF352",
        "does not subclass `AStage`",
    ),
    (
        "WF353 missing",
        lambda p: edit(p / A, "def execute", "def run"),
        "WF353",
        "does not define `execute`",
    ),
    (
        "WF353 params",
        lambda p: edit(p / A, "(self, ctx: AContext)", "(self)"),
        "WF353",
        "must take (self, ctx)",
    ),
    (
        "WF353 ctx",
        lambda p: edit(p / A, "ctx: AContext", "ctx: BContext"),
        "WF353",
        "should be `AContext`",
    ),
    (
        "WF353 return",
        lambda p: edit(p / A, "-> AOutput:", "-> int:"),
        "WF353",
        "does not return `AOutput`",
    ),
    (
        "WF354",
        lambda p: edit(p / B, "def check_completion", "def check"),
        "WF354",
        "has no `check_completion`",
    ),
    (
        "WF355",
        lambda p: edit(
            p / A,
            '        raise NotImplementedError("stage `a`: implement execute()")',
            "        raise NotImplementedError\n\n    def check_completion(self, state, ctx):\n        pass",
        ),
        "WF355",
        "is not async, so `check_completion` is never called",
    ),
    (
        "WF356",
        lambda p: edit(p / A, "import AOutput", "import AOutput, Gone"),
        "WF356",
        "imports `Gone`",
    ),
]


@pytest.mark.parametrize(
    ("case", "mutate", "code", "fragment"), MUTATIONS, ids=[m[0] for m in MUTATIONS]
)
def test_a_stub_that_no_longer_fits_is_named(
    package: Path, case: str, mutate: Callable[[Path], None], code: str, fragment: str
) -> None:
    mutate(package)
    found = codes(package.parent)
    assert any(c == code and fragment in m for c, m in found), found


def test_a_stub_left_behind_by_a_renamed_stage_is_named(package: Path) -> None:
    source = package.parent / "t.wf"
    edit(source, "stage a {", "stage first {")
    edit(source, "flow a -> b", "flow first -> b")
    assert compile_path(source).ok
    found = check_paths([package.parent]).diagnostics
    assert [(d.code, d.severity) for d in found] == [("WF357", Severity.WARNING)]
    assert found[0].path == (package / "stages" / "a.py").as_posix()
    assert "`a`" in found[0].message and found[0].help


def test_a_wf_and_a_yaml_file_compiling_into_one_package_is_an_error(package: Path) -> None:
    (package.parent / "t.wf.yaml").write_text(
        "workflow:\n  id: t\n  input: {n: int}\n  output: {m: int}\n"
        "  stages:\n    a: {input: {n: int}, output: {m: int}}\n"
        "    b: {async: true, input: {m: int}, output: {m: int}}\n"
        "  flow: a -> b\n"
    )
    clash = [d for d in check_paths([package.parent]).diagnostics if d.code == "WF361"]
    assert len(clash) == 1 and "t.wf" in clash[0].message and "t.wf.yaml" in clash[0].message
    compiled = compile_path(package.parent / "t.wf.yaml")
    assert [d.code for d in compiled.diagnostics] == ["WF361"] and not compiled.written


def test_a_stub_of_a_yaml_workflow_is_told_the_yaml_fix(tmp_path: Path) -> None:
    # WF355's help names the fix in the source, so a `.wf.yaml` author is told the key to set.
    source = tmp_path / "t.wf.yaml"
    source.write_text(
        "workflow:\n  id: t\n  input: {n: int}\n  output: {m: int}\n"
        "  stages:\n    a: {input: {n: int}, output: {m: int}}\n  flow: a\n"
    )
    assert compile_path(source).ok
    edit(
        tmp_path / "t" / A,
        '        raise NotImplementedError("stage `a`: implement execute()")',
        "        raise NotImplementedError\n\n    def check_completion(self, state, ctx):\n        pass",
    )
    (found,) = check_paths([tmp_path]).diagnostics
    assert found.code == "WF355"
    assert found.help == "make the stage `async: true` on stage `a` or remove the method"
