"""`when` and optional needs: parsing, lowering to the Plan, skipping analysis, YAML, codegen, graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler import ast
from wfc.compiler.driver import analyse, compile_path
from wfc.compiler.graph_render import condition_text, to_dot, to_mermaid
from wfc.compiler.lower import lower
from wfc.compiler.parser import parse_source
from wfc.compiler.printer import print_condition, print_module
from wfc.compiler.source import SourceFile
from wfc.plan import Condition, Plan

TRIAGE = """workflow triage {
  enum Label { spam, ham, unsure }
  input { text: str, confidence: float, tags: list[str] = [], strict: bool? }
  output { verdict: Label }

  stage classify { input { text: str } output { label: Label, score: float } }
  stage review {
    input none
    needs classify
    when input.confidence < 0.8 and classify.label in [Label.spam, Label.unsure]
    output { verdict: Label }
  }
  stage decide {
    input none
    needs classify, review?
    output { verdict: Label }
  }
  flow classify -> review -> decide
}
"""


def _plan(tmp_path: Path, source: str, name: str = "case.wf") -> Plan:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    checked, diagnostics = analyse(path)
    assert checked is not None, [d.message for d in diagnostics]
    return lower(checked)


def _codes(tmp_path: Path, source: str) -> list[str]:
    path = tmp_path / "case.wf"
    path.write_text(source, encoding="utf-8")
    return [d.code for d in analyse(path)[1]]


def _field(*path: str) -> Condition:
    return Condition(op="field", path=path)


def _literal(value: object) -> Condition:
    return Condition(op="literal", value=value)


def _condition_of(tmp_path: Path, when: str) -> Condition | None:
    plan = _plan(tmp_path, TRIAGE.replace("when input.confidence < 0.8 and", f"when {when} and"))
    condition = plan.stage("review").when
    assert condition is not None and condition.op == "and"
    return condition.args[0]


# -- lowering ------------------------------------------------------------------


def test_a_condition_lowers_to_the_plan_tree_with_enum_members_as_strings(tmp_path: Path) -> None:
    plan = _plan(tmp_path, TRIAGE)
    assert plan.stage("review").when == Condition(
        op="and",
        args=(
            Condition(op="lt", args=(_field("input", "confidence"), _literal(0.8))),
            Condition(op="in", args=(_field("classify", "label"), _literal(["spam", "unsure"]))),
        ),
    )
    assert plan.stage("decide").optional_needs == ("review",)
    assert plan.stage("decide").needs == ("classify", "review")
    assert plan.stage("classify").when is None


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (
            'input.text not in ["a"]',
            Condition(
                op="not",
                args=(Condition(op="in", args=(_field("input", "text"), _literal(["a"]))),),
            ),
        ),
        (
            "len(input.tags) >= 2",
            Condition(
                op="ge", args=(Condition(op="len", args=(_field("input", "tags"),)), _literal(2))
            ),
        ),
        (
            "not input.confidence == 1",
            Condition(
                op="not",
                args=(Condition(op="eq", args=(_field("input", "confidence"), _literal(1))),),
            ),
        ),
        # Inside `and`, a null reads false already: the field is kept as written.
        ("input.strict", _field("input", "strict")),
        (
            "classify.label != Label.ham",
            Condition(op="ne", args=(_field("classify", "label"), _literal("ham"))),
        ),
        (
            "(input.confidence > 1 or input.confidence < 0)",
            Condition(
                op="or",
                args=(
                    Condition(op="gt", args=(_field("input", "confidence"), _literal(1))),
                    Condition(op="lt", args=(_field("input", "confidence"), _literal(0))),
                ),
            ),
        ),
    ],
)
def test_each_operator_lowers(tmp_path: Path, written: str, expected: Condition) -> None:
    assert _condition_of(tmp_path, written) == expected


def test_a_condition_that_is_one_optional_field_holds_only_when_true(tmp_path: Path) -> None:
    # `holds` wants true or false; a null must mean "do not run", as it does under `and`.
    source = TRIAGE.replace("when input.confidence < 0.8 and", "when input.strict or")
    source = source.replace("classify.label in [Label.spam, Label.unsure]", "")
    source = source.replace("when input.strict or", "when input.strict")
    plan = _plan(tmp_path, source)
    assert plan.stage("review").when == Condition(
        op="eq", args=(_field("input", "strict"), _literal(True))
    )


def test_a_bare_bool_field_that_cannot_be_null_is_kept_as_written(tmp_path: Path) -> None:
    source = TRIAGE.replace("strict: bool?", "strict: bool")
    plan = _plan(
        tmp_path, source.replace("when input.confidence < 0.8 and", "when input.strict and")
    )
    condition = plan.stage("review").when
    assert condition is not None and condition.args[0] == _field("input", "strict")


def test_a_workflow_without_when_keeps_its_plan_bytes(tmp_path: Path) -> None:
    source = TRIAGE.replace("needs classify, review?", "needs classify").replace(
        "    when input.confidence < 0.8 and classify.label in [Label.spam, Label.unsure]\n", ""
    )
    text = _plan(tmp_path, source).to_json()
    assert '"when"' not in text and '"optional_needs"' not in text


# -- checks --------------------------------------------------------------------


def test_a_stage_needing_only_a_skipped_stage_is_skipped_with_it_and_needs_no_mark(
    tmp_path: Path,
) -> None:
    # `decide` depends on `review` alone: it never runs without it, so no `?` is asked for;
    # it may itself be skipped, so the output warning names it.
    source = TRIAGE.replace("needs classify, review?", "needs review")
    assert _codes(tmp_path, source) == ["WF413"]


def test_a_mark_on_the_only_dependency_is_warned_about(tmp_path: Path) -> None:
    source = TRIAGE.replace("needs classify, review?", "needs review?")
    path = tmp_path / "case.wf"
    path.write_text(source)
    diagnostics = analyse(path)[1]
    assert [d.code for d in diagnostics] == ["WF412", "WF413"]
    assert "`decide` is skipped whenever `review` is" in diagnostics[0].message


def test_a_skippable_stage_in_a_parallel_group_reaches_the_next_as_optional(
    tmp_path: Path,
) -> None:
    source = """workflow w {
  input { flag: bool }
  type A { n: int }
  type B { m: int }
  stage a { output { n: int } when input.flag }
  stage b { output { m: int } }
  stage c { input { a: AOutput, b: BOutput } }
  stage d { input { a: AOutput?, b: BOutput } }
  flow [a, b] -> [c, d]
}
"""
    source = source.replace("AOutput", "A").replace("BOutput", "B")
    source = source.replace("output { n: int }", "output A").replace(
        "output { m: int }", "output B"
    )
    path = tmp_path / "case.wf"
    path.write_text(source)
    diagnostics = analyse(path)[1]
    assert [d.code for d in diagnostics] == ["WF312"]
    assert "stage `c` takes `a`" in diagnostics[0].message


def test_when_given_twice_is_wf208(tmp_path: Path) -> None:
    source = TRIAGE.replace("    needs classify\n", "    needs classify\n    when input.strict\n")
    assert "WF208" in _codes(tmp_path, source)


def test_an_enum_compared_with_a_string_suggests_the_member(tmp_path: Path) -> None:
    path = tmp_path / "case.wf"
    path.write_text(
        TRIAGE.replace("classify.label in [Label.spam, Label.unsure]", 'classify.label == "spam"')
    )
    (diagnostic,) = analyse(path)[1]
    assert diagnostic.code == "WF322" and diagnostic.help is not None
    assert "write `Label.spam`" in diagnostic.help


def test_a_field_in_a_list_is_refused(tmp_path: Path) -> None:
    source = TRIAGE.replace("[Label.spam, Label.unsure]", "[Label.spam, classify.label]")
    assert _codes(tmp_path, source) == ["WF326"]


def test_one_mistake_in_a_condition_gives_one_diagnostic(tmp_path: Path) -> None:
    source = TRIAGE.replace(
        "input.confidence < 0.8", "not (input.nope < 0.8 or len(input.nope2) > 1)"
    )
    assert _codes(tmp_path, source) == ["WF231", "WF231"]


def test_reading_a_stage_of_the_same_group_is_wf410(tmp_path: Path) -> None:
    source = TRIAGE.replace(
        "flow classify -> review -> decide", "flow [classify, review] -> decide"
    )
    source = source.replace("    needs classify\n", "")
    path = tmp_path / "case.wf"
    path.write_text(source)
    (diagnostic,) = [d for d in analyse(path)[1] if d.code == "WF410"]
    assert "runs in the same parallel group as it" in diagnostic.message


# -- syntax --------------------------------------------------------------------


def _parse_condition(text: str) -> ast.Expr:
    source = f"workflow w {{ stage s {{ when {text} }} flow s }}"
    module = parse_source(SourceFile(path=Path("x.wf"), text=source))
    assert isinstance(module, ast.Module), module
    return module.workflows[0].stages[0].conditions[0]


@pytest.mark.parametrize(
    "text",
    [
        "a.b or c.d and e.f",
        "(a.b or c.d) and e.f",
        "a.b and (c.d and e.f)",
        "not not a.b",
        "not (a.b and c.d)",
        "a.b not in [1, 2.5, null, true]",
        'len(a.b) > -1 or "x" in a.c',
        "(a.b == 1) == true",
        # found by the property test: a list's items are atoms, so `not` in one needs ( )
        'a.b and [(not ""), (c.d == 1), len(e.f)]',
    ],
)
def test_conditions_print_back_to_the_same_tree(text: str) -> None:
    tree = _parse_condition(text)
    assert _parse_condition(print_condition(tree)) == tree


def test_comparisons_do_not_chain_and_say_so(tmp_path: Path) -> None:
    assert _codes(
        tmp_path, TRIAGE.replace("input.confidence < 0.8", "0 < input.confidence < 0.8")
    ) == ["WF101"]


def test_the_printer_writes_the_optional_mark_and_the_condition() -> None:
    module = parse_source(SourceFile(path=Path("x.wf"), text=TRIAGE))
    assert isinstance(module, ast.Module)
    printed = print_module(module)
    assert "    needs classify, review?\n" in printed
    assert (
        "    when input.confidence < 0.8 and classify.label in [Label.spam, Label.unsure]\n"
        in printed
    )


# -- YAML ----------------------------------------------------------------------

TRIAGE_YAML = """workflow:
  id: triage
  enums: {Label: [spam, ham, unsure]}
  input: {text: str, confidence: float, tags: "list[str] = []", strict: "bool?"}
  output: {verdict: Label}
  stages:
    classify: {input: {text: str}, output: {label: Label, score: float}}
    review:
      input: none
      needs: classify
      when: input.confidence < 0.8 and classify.label in [Label.spam, Label.unsure]
      output: {verdict: Label}
    decide: {input: none, needs: [classify, "review?"], output: {verdict: Label}}
  flow: classify -> review -> decide
"""


def test_yaml_when_and_optional_needs_give_the_same_plan(tmp_path: Path) -> None:
    from_wf = _plan(tmp_path, TRIAGE)
    from_yaml = _plan(tmp_path, TRIAGE_YAML, name="case.wf.yaml")
    assert from_yaml.content() == from_wf.content()


def test_a_yaml_condition_error_points_into_the_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "case.wf.yaml"
    path.write_text(TRIAGE_YAML.replace("classify.label in", "classify.lable in"))
    (diagnostic,) = analyse(path)[1]
    assert diagnostic.code == "WF231"
    assert diagnostic.location == f"{path.as_posix()}:11:49"
    assert diagnostic.help == "did you mean `label`?"


def test_a_yaml_condition_syntax_error_points_into_the_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "case.wf.yaml"
    path.write_text(TRIAGE_YAML.replace("input.confidence < 0.8", "input.confidence < < 0.8"))
    (diagnostic,) = analyse(path)[1]
    assert diagnostic.code == "WF101" and diagnostic.location.endswith(":11:32")


def test_an_unquoted_optional_need_in_a_yaml_flow_list_says_to_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "case.wf.yaml"
    path.write_text(TRIAGE_YAML.replace('"review?"', "review?"))
    (diagnostic,) = analyse(path)[1]
    assert diagnostic.code == "WF120" and diagnostic.help is not None
    assert '"review?"' in diagnostic.help


# -- generated code and graph ----------------------------------------------------


def test_an_optional_need_is_typed_none_in_the_context(tmp_path: Path) -> None:
    (tmp_path / "triage.wf").write_text(TRIAGE)
    result = compile_path(tmp_path / "triage.wf", tmp_path / "out")
    assert result.ok
    stages = (tmp_path / "out" / "_stages.py").read_text()
    assert "    def review(self) -> ReviewOutput | None:\n" in stages
    assert "    def classify(self) -> ClassifyOutput:\n" in stages


def test_graph_shows_the_condition_and_the_optional_need(tmp_path: Path) -> None:
    plan = _plan(tmp_path, TRIAGE)
    mermaid = to_mermaid(plan)
    assert (
        '  review["Review<br/>when input.confidence #lt; 0.8 and classify.label in '
        "['spam', 'unsure']\"]\n" in mermaid
    )
    assert "  review -. optional .-> decide\n" in mermaid
    dot = to_dot(plan)
    assert '"review" -> "decide" [style=dashed, label="optional"];' in dot
    assert "when input.confidence < 0.8" in dot


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        (
            Condition(op="not", args=(Condition(op="in", args=(_field("a", "b"), _literal([1]))),)),
            "a.b not in [1]",
        ),
        (
            Condition(
                op="and",
                args=(
                    Condition(op="or", args=(_field("a", "x"), _field("a", "y"))),
                    Condition(op="not", args=(_field("a", "z"),)),
                ),
            ),
            "(a.x or a.y) and not a.z",
        ),
    ],
)
def test_condition_text_parenthesises_where_needed(condition: Condition, text: str) -> None:
    assert condition_text(condition) == text


@pytest.mark.parametrize(
    ("condition", "message", "under"),
    [
        ("input.confidence = 1", "a condition compares with `==`", "="),
        ("0 < input.confidence <= 1", "comparisons do not chain", "<="),
    ],
)
def test_common_condition_slips_get_a_named_message(
    tmp_path: Path, condition: str, message: str, under: str
) -> None:
    path = tmp_path / "case.wf"
    path.write_text(TRIAGE.replace("input.confidence < 0.8", condition))
    (diagnostic,) = analyse(path)[1]
    assert diagnostic.code == "WF101" and diagnostic.message == message
    assert diagnostic.span is not None
    assert path.read_text()[diagnostic.span.start : diagnostic.span.end] == under
