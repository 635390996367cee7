"""Syntax errors in the user's terms: at the line and column of the mistake, one per mistake,
each with a help line, and every independent one found in a single run."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.diagnostics import Diagnostic, render_text
from wfc.compiler.driver import analyse


def _diagnose(tmp_path: Path, source: str | bytes, name: str = "case.wf") -> list[Diagnostic]:
    path = tmp_path / name
    if isinstance(source, bytes):
        path.write_bytes(source)
    else:
        path.write_text(source, encoding="utf-8")
    return analyse(path)[1]


def _at(d: Diagnostic) -> tuple[int, int]:
    assert d.span is not None, d
    return d.span.file.line_col(d.span.start)


def _only(tmp_path: Path, source: str | bytes) -> Diagnostic:
    found = _diagnose(tmp_path, source)
    assert len(found) == 1, render_text(found)
    return found[0]


def test_a_missing_word_is_reported_where_it_is_missing(tmp_path: Path) -> None:
    source = (
        "workflow w {\n"
        "  stage s {\n"
        "    output { x: int }\n"
        "    retry 3\n"
        "    timeout 5m\n"
        "  }\n"
        "  flow s\n"
        "}\n"
    )
    d = _only(tmp_path, source)
    assert d.code == "WF101"
    assert _at(d) == (4, 12)  # just after `retry 3`, not at the `timeout` below
    assert "`times`" in d.message and "missing" in d.message
    assert d.help is not None and "`retry 3 times`" in d.help  # how the statement is written


def test_a_trailing_arrow_is_reported_after_the_arrow(tmp_path: Path) -> None:
    source = "workflow w {\n  stage s { output { x: int } }\n  flow s ->\n  stage t { }\n}\n"
    d = _only(tmp_path, source)
    assert _at(d) == (3, 12)
    assert "after `->`" in d.message
    assert d.help is not None and "`flow a -> [b, c] -> d`" in d.help


def test_a_keyword_is_not_split_off_the_front_of_a_longer_word(tmp_path: Path) -> None:
    source = "workflow w {\n  input { t: str (length 1 .. 5) }\n  stage s { output { x: int } }\n  flow s\n}\n"
    d = _only(tmp_path, source)
    assert d.code == "WF101"
    assert "`length`" in d.message and "`gth`" not in d.message
    assert _at(d) == (2, 19)
    assert d.span is not None and d.span.end - d.span.start == len("length")
    assert d.help is not None and "did you mean `len`?" in d.help


def test_a_word_glued_to_a_keyword_is_still_one_word_elsewhere(tmp_path: Path) -> None:
    # `x2` in a backoff is `x` and a number; a name that starts with a keyword is a name.
    source = (
        "workflow w {\n  input { lengthy: int, index: int }\n"
        "  stage s { output { x: int } retry 3 times, backoff exponential 1s x2 max 1m }\n"
        "  flow s\n}\n"
    )
    assert _diagnose(tmp_path, source) == []


@pytest.mark.parametrize(
    ("typo", "keyword", "where"),
    [
        ("stge s { output { x: int } }\n  flow s", "stage", (2, 3)),
        ("stage s { output { x: int } }\n  flwo s", "flow", (3, 3)),
        ("stage s { output { x: int } retyr 3 times }\n  flow s", "retry", (2, 31)),
    ],
)
def test_a_misspelled_keyword_gets_did_you_mean(
    tmp_path: Path, typo: str, keyword: str, where: tuple[int, int]
) -> None:
    d = _only(tmp_path, "workflow w {\n  " + typo + "\n}\n")
    assert d.help is not None and f"did you mean `{keyword}`?" in d.help
    assert _at(d) == where


def test_an_invisible_character_is_named(tmp_path: Path) -> None:
    d = _only(tmp_path, "workflow w {\n  stage s\u00a0{ output { x: int } }\n  flow s\n}\n")
    assert d.code == "WF103"
    assert "U+00A0 NO-BREAK SPACE" in d.message and "\u00a0" not in d.message
    assert _at(d) == (2, 10)
    assert d.help is not None and "space" in d.help


def test_a_non_ascii_name_says_names_are_ascii(tmp_path: Path) -> None:
    d = _only(tmp_path, "workflow w {\n  stage caf\u00e9 { output { x: int } }\n  flow s\n}\n")
    assert d.code == "WF103"
    assert _at(d) == (2, 12)
    assert "U+00E9" in d.message
    assert d.help is not None and "ASCII" in d.help


def test_a_latin1_file_gets_a_line_and_column(tmp_path: Path) -> None:
    source = "workflow w {\n  # café\n  stage s { output { x: int } }\n  flow s\n}\n"
    d = _only(tmp_path, source.encode("latin-1"))
    assert d.code == "WF112"
    assert _at(d) == (2, 8)
    assert "0xe9" in d.message
    assert d.help is not None and "UTF-8" in d.help


@pytest.mark.parametrize(
    "source",
    [
        "workflow w { $ }",
        "workflow w { stage s { output { x: int } } flow s ; }",
        "workflow w { stage s { output { x: int } timeout } flow s }",
        "workflow w { stage s { output { x: int } needs } flow s }",
        "workflow w { stage s { output { x: int } } flow s -> [a b] }",
        "workflow w { input { a: list[int }  stage s { output { x: int } } flow s }",
        "workflow w { stage s { output { x: int } when a == } flow s }",
        "workflow w { stage s { output { x: int } } flow s } }",
        "workflow { }",
        "type T { a: int = }",
        "enum E { a: b }",
        "workflow w { stage s { output { x: int } poll 1m } flow s }",
        "workflow w { stage s { output { x: int } priority high } flow s }",
        "workflow w { stage s 'x' { output { x: int } } flow s }",
    ],
)
def test_every_syntax_error_has_a_help_line(tmp_path: Path, source: str) -> None:
    found = _diagnose(tmp_path, source)
    assert found and all(d.code.startswith("WF10") for d in found), render_text(found)
    assert all(d.help for d in found), render_text(found)


def test_independent_syntax_errors_are_all_reported_in_one_run(tmp_path: Path) -> None:
    source = (
        "workflow w {\n"
        "  stage a {\n"
        "    output { x int }\n"
        "  }\n"
        "  stage b {\n"
        "    output { y: int }\n"
        "    retry 3 tims\n"
        "  }\n"
        "  stage c { output { z: int } timeout }\n"
        "  flow a -> b -> c\n"
        "}\n"
    )
    found = _diagnose(tmp_path, source)
    assert [(d.code, _at(d)[0]) for d in found] == [("WF101", 3), ("WF101", 7), ("WF101", 9)]


def test_one_syntax_error_is_reported_once(tmp_path: Path) -> None:
    source = (
        "workflow w {\n  stage a {\n    output { x: int\n  }\n"
        "  stage b { output { y: int } }\n  flow a -> b\n}\n"
    )
    assert len(_diagnose(tmp_path, source)) == 1


def test_the_number_of_syntax_errors_is_capped(tmp_path: Path) -> None:
    stages = "".join(f"  stage s{i} {{ output {{ x int }} }}\n" for i in range(40))
    found = _diagnose(tmp_path, "workflow w {\n" + stages + "  flow s0\n}\n")
    assert 1 < len(found) <= 20


def test_an_extra_closing_brace_is_blamed_not_the_item_after_it(tmp_path: Path) -> None:
    source = (
        "workflow w {\n  stage a { output { x: int } } }\n  stage b { output { x: int } }\n"
        "  flow a -> b\n}\n"
    )
    d = _only(tmp_path, source)
    assert _at(d) == (3, 3)
    assert d.message == "`stage` is outside the workflow"
    assert d.help is not None and "extra `}`" in d.help
