"""The language front end of child workflows: `stage x runs <workflow> { … }` in `.wf`,
`runs:` in YAML, the checker's diagnostics (WF460-WF465), the lowered `wfc:child` stage,
the builder's `child_stage` and `wfc diff`'s rules for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from wfc.compiler import compile_path
from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.diff import Verdict, diff_plans
from wfc.compiler.driver import analyse
from wfc.compiler.parser import parse_source
from wfc.compiler.printer import print_module
from wfc.compiler.source import SourceFile
from wfc.plan import CHILD_IMPLEMENTATION, Plan
from wfc.runtime import WorkflowBuilder, child_stage, define_stage

CHILD = """workflow child {
  input { id: str, note: str? }
  output { id: str, score: float }
  stage work { input { id: str } output { id: str, score: float } }
  flow work
}
"""

PARENT = """import "child.wf"

workflow parent {
  input { id: str }
  output { done: bool }
  stage call runs child { retry 4 times }
  stage after { input { score: float } output { done: bool } }
  flow call -> after
}
"""


def _write(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / f"{name}.wf").write_text(text)
    return tmp_path / f"{next(iter(files))}.wf"


def _codes(tmp_path: Path, **files: str) -> list[str]:
    _, diagnostics = analyse(_write(tmp_path, **files))
    return [d.code for d in diagnostics]


def _plan(tmp_path: Path, **files: str) -> Plan:
    result = compile_path(_write(tmp_path, **files), check=True)
    assert result.ok and result.plan is not None, result.diagnostics
    return result.plan


def test_a_child_stage_lowers_to_the_builtin_with_the_childs_schemas(tmp_path: Path) -> None:
    plan = _plan(tmp_path, parent=PARENT, child=CHILD)
    call = plan.stage("call")
    assert call.implementation == CHILD_IMPLEMENTATION
    assert call.child is not None and call.child.workflow_id == "child"
    assert (call.kind, call.map, call.poll, call.concurrency, call.rate) == (
        "sync",
        None,
        None,
        None,
        None,
    )
    assert call.input_source == "flow" and call.retry.max_attempts == 4
    own = compile_path(tmp_path / "child.wf", check=True).plan
    assert own is not None
    assert (call.input_schema, call.output_schema) == (own.input_schema, own.output_schema)


def test_the_syntax_prints_back_as_written() -> None:
    module = parse_source(SourceFile(path=Path("p.wf"), text=PARENT))
    assert not isinstance(module, Diagnostic)
    again = parse_source(SourceFile(path=Path("p.wf"), text=print_module(module)))
    assert again == module
    assert module.workflows[0].stages[0].runs is not None


def test_the_yaml_form_reads_runs(tmp_path: Path) -> None:
    (tmp_path / "child.wf").write_text(CHILD)
    (tmp_path / "parent.wf.yaml").write_text(
        "imports: [child.wf]\n"
        "workflow:\n"
        "  id: parent\n"
        "  input: {id: str}\n"
        "  stages:\n"
        "    call: {runs: child, retry: 2 times}\n"
        "  flow: call\n"
    )
    result = compile_path(tmp_path / "parent.wf.yaml", check=True)
    assert result.ok and result.plan is not None, result.diagnostics
    assert result.plan.stage("call").child is not None


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (("runs child", "runs chlid"), "WF460"),
        (("runs child", "runs parent"), "WF461"),
        (("{ retry 4 times }", "{ output { x: int } }"), "WF462"),
        (("{ retry 4 times }", "{ input { id: str } }"), "WF462"),
        (("{ retry 4 times }", "{ map input.ids }"), "WF462"),
        (("{ retry 4 times }", "{ input none }"), "WF463"),
        (("input { id: str }\n  output", "input { id: int }\n  output"), "WF463"),
    ],
)
def test_diagnostics(tmp_path: Path, edit: tuple[str, str], code: str) -> None:
    parent = PARENT.replace(
        "input { id: str }\n  output", "input { id: str, ids: list[str] }\n  output"
    )
    if edit[0].startswith("input { id: str }"):
        parent = PARENT.replace(*edit)
    else:
        parent = parent.replace(*edit)
    assert code in _codes(tmp_path, parent=parent, child=CHILD)


def test_a_cycle_through_children_in_other_files_is_reported(tmp_path: Path) -> None:
    b = 'import "c.wf"\nworkflow b { stage s runs c {} flow s }\n'
    c = "workflow c { stage s runs b {} flow s }\n"
    codes = _codes(tmp_path, b=b, c=c)
    assert "WF461" in codes


def test_a_broken_child_is_one_error(tmp_path: Path) -> None:
    codes = _codes(
        tmp_path,
        parent=PARENT,
        child=CHILD.replace("score: float }\n  stage", "score: flaot }\n  stage"),
    )
    assert codes == ["WF464"]


def test_the_generated_package_has_no_class_for_the_child_stage(tmp_path: Path) -> None:
    source = _write(tmp_path, parent=PARENT, child=CHILD)
    result = compile_path(source, tmp_path / "out")
    assert result.ok
    stages = (tmp_path / "out" / "_stages.py").read_text()
    assert "class CallStage" not in stages and '"call"' in stages
    assert not (tmp_path / "out" / "stages" / "call.py").exists()
    assert "class CallOutput" in (tmp_path / "out" / "_models.py").read_text()


class _In(BaseModel):
    id: str


class _Out(BaseModel):
    id: str
    score: float


def _work(ctx: object) -> _Out:
    return _Out(id="x", score=1.0)


def test_the_builder_makes_the_same_stage() -> None:
    child = (
        WorkflowBuilder("child", "Child", input=_In)
        .pipe(define_stage(id="work", input=_In, output=_Out, execute=_work))
        .build()
    )
    parent = WorkflowBuilder("parent", "Parent", input=_In).pipe(
        child_stage(id="call", workflow=child)
    )
    built = parent.build()
    call = built.plan.stage("call")
    assert call.child is not None and call.child.workflow_id == "child"
    assert call.input_schema == child.plan.input_schema
    assert "call" not in built.implementations


def test_diff_of_the_workflow_a_stage_runs(tmp_path: Path) -> None:
    (tmp_path / "other.wf").write_text(CHILD.replace("workflow child", "workflow other"))
    old = _plan(tmp_path, parent=PARENT, child=CHILD)
    new = _plan(
        tmp_path,
        parent=PARENT.replace('"child.wf"', '"other.wf"').replace("runs child", "runs other"),
    )
    changes = {(c.code, c.verdict) for c in diff_plans(old, new).changes}
    assert ("stage-child-workflow-changed", Verdict.BREAKING_IF_STARTED) in changes
