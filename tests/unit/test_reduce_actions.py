"""The AST is built as the parser reduces (`reduce_actions`), so the positions of its nodes
are worked out there rather than by lark's tree builder: they must be the ones lark gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wfc.compiler import ast
from wfc.compiler.parser import _parser, parse_source
from wfc.compiler.reduce_actions import Reduced, parse_to_ast
from wfc.compiler.source import SourceFile

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    path
    for path in sorted((ROOT / "examples").rglob("*.wf"))
    + sorted((ROOT / "tests" / "golden" / "cases").rglob("*.wf"))
    if path.parent.name != "syntax_errors"
]

NESTED = """workflow w {
  input { a: int, b: bool }
  output { ok: bool }
  ## Documented.
  stage s {
    input none
    when ((input.a == 1)) and not (input.b)
    output { ok: bool }
  }
  flow s
}
"""


def _rule_names() -> set[str]:
    return {
        str(rule.alias or rule.origin.name)
        for rule in _parser().rules
        if not rule.origin.name.startswith("_")
    }


def _recorder() -> Any:
    """A builder with a callback for every rule, each noting its rule and the span it gets."""
    seen: list[tuple[str, int | None, int | None]] = []

    def method(name: str) -> Any:
        def record(self: Any, meta: Reduced, children: list[Any]) -> str:
            seen.append((name, None, None) if meta.empty else (name, meta.start_pos, meta.end_pos))
            return name

        return record

    builder = type("Recorder", (), {name: method(name) for name in _rule_names()})()
    builder.seen = seen
    return builder


def _lark_positions(text: str) -> list[tuple[str, int | None, int | None]]:
    """What lark's own tree builder, with `propagate_positions`, gives each rule's node."""
    tree = _parser().parse(text, start="start")
    return [
        (str(t.data), None, None)
        if t.meta.empty
        else (str(t.data), t.meta.start_pos, t.meta.end_pos)
        for t in tree.iter_subtrees()
    ]


@pytest.mark.parametrize(
    "text",
    [NESTED, *(path.read_text(encoding="utf-8") for path in SOURCES)],
    ids=["nested", *(path.name for path in SOURCES)],
)
def test_every_node_spans_what_lark_gives_it(text: str) -> None:
    expected = _lark_positions(text)
    builder = _recorder()
    parse_to_ast(_parser(), text, "start", builder)
    assert sorted(builder.seen, key=repr) == sorted(expected, key=repr)


def test_parentheses_belong_to_the_condition_around_them() -> None:
    """`((input.a == 1)) and …`: the comparison spans `input.a == 1`; the `and` starts at
    the first parenthesis, and a stage's span starts at its doc comment."""
    module = parse_source(SourceFile(path=Path("w.wf"), text=NESTED))
    assert isinstance(module, ast.Module)
    stage = module.workflows[0].stages[0]
    condition = stage.conditions[0]
    assert isinstance(condition, ast.Logical)
    comparison, negation = condition.operands

    def text(span: Any) -> str:
        return NESTED[span.start : span.end]

    assert text(comparison.span) == "input.a == 1"
    assert text(condition.span) == "((input.a == 1)) and not (input.b)"
    assert text(negation.span) == "not (input.b)"
    assert text(stage.span).startswith("## Documented.\n  stage s {")
