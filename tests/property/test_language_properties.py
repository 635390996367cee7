"""Hypothesis: generated programs parse, print→parse is the identity, and no text makes the compiler raise."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from wfc.compiler import ast
from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.loader import decode_source
from wfc.compiler.parser import _parser, parse_source
from wfc.compiler.printer import print_module
from wfc.compiler.source import SourceFile

KEYWORDS = {t.pattern.value for t in _parser().terminals if t.pattern.type == "str"}
names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in KEYWORDS
)
strings = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
)
_SPECIAL = {
    "NAME": names,
    "STRING": strings,
    "DOC": st.from_regex(r"## [a-z ]{0,10}", fullmatch=True).map(lambda d: d + "\n"),
    "DURATION": st.from_regex(r"[1-9][0-9]{0,2}(ms|s|m|h|d)", fullmatch=True),
    "NUMBER": st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{1,2})?", fullmatch=True),
    "WS": st.just(" "),
    "COMMENT": st.just("# note\n"),
}


def _terminal(term: object) -> st.SearchStrategy[str]:
    """Every token is followed by whitespace: from_lark does not emit %ignore'd separators."""
    name, pattern = term.name, term.pattern  # type: ignore[attr-defined]
    if name in _SPECIAL:
        base = _SPECIAL[name]
    elif pattern.type == "str":
        base = st.just(pattern.value)
    else:
        base = st.from_regex(pattern.to_regexp(), fullmatch=True)
    return base.flatmap(lambda text: st.sampled_from([" ", "\n", " \t "]).map(lambda ws: text + ws))


programs = from_lark(
    _parser(), start="start", explicit={t.name: _terminal(t) for t in _parser().terminals}
)


def _parse(text: str) -> ast.Module | Diagnostic:
    return parse_source(SourceFile(path=Path("gen.wf"), text=text))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(programs)
def test_generated_programs_parse(text: str) -> None:
    assert isinstance(_parse(text), ast.Module), text


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(programs)
def test_print_then_parse_is_identity(text: str) -> None:
    tree = _parse(text)
    assert isinstance(tree, ast.Module)
    printed = print_module(tree)
    again = _parse(printed)
    assert isinstance(again, ast.Module), printed
    assert again == tree


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_only_ever_gives_diagnostics(text: str) -> None:
    result = _parse(text)
    assert isinstance(result, ast.Module | Diagnostic)


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_arbitrary_bytes_only_ever_give_diagnostics(data: bytes) -> None:
    source = decode_source(Path("x.wf"), data)
    if isinstance(source, SourceFile):
        assert isinstance(_parse(source.text), ast.Module | Diagnostic)
