"""One mistake gives one diagnostic, and its labels read in the order of the file."""

from __future__ import annotations

from pathlib import Path

from wfc.compiler.diagnostics import Diagnostic, render_text
from wfc.compiler.driver import analyse


def _diagnose(tmp_path: Path, source: str) -> list[Diagnostic]:
    path = tmp_path / "case.wf"
    path.write_text(source, encoding="utf-8")
    return analyse(path)[1]


FLOW_TYPO = """workflow w {
  stage a { output { x: int } }
  stage b { input { x: int } output { y: int } }
  stage c { input { y: int } output { z: int } needs b }
  flow a -> bb -> c
}
"""


def test_a_typo_in_flow_is_one_error(tmp_path: Path) -> None:
    found = _diagnose(tmp_path, FLOW_TYPO)
    assert [d.code for d in found] == ["WF202"], render_text(found)
    assert found[0].help == "did you mean `b`?"


def test_a_stage_left_out_of_the_flow_is_still_reported(tmp_path: Path) -> None:
    source = FLOW_TYPO.replace("flow a -> bb -> c", "flow a -> zzz -> b -> c").replace(
        "needs b }", "needs b }\n  stage d { output { q: int } }"
    )
    assert sorted(d.code for d in _diagnose(tmp_path, source)) == ["WF202", "WF401"]


def test_a_duplicate_shows_the_first_declaration_first(tmp_path: Path) -> None:
    source = "workflow w {\n  stage s { output { x: int } }\n  stage s { output { x: int } }\n  flow s\n}\n"
    (d,) = _diagnose(tmp_path, source)
    rendered = render_text([d])
    first, again = rendered.index("first declared here"), rendered.index("declared again here")
    assert first < again, rendered
    assert rendered.index("2 |") < rendered.index("3 |")


def test_two_marks_on_one_line_share_the_line(tmp_path: Path) -> None:
    source = (
        "workflow w {\n  input { a: int, a: str }\n  stage s { output { x: int } }\n  flow s\n}\n"
    )
    (d,) = _diagnose(tmp_path, source)
    rendered = render_text([d])
    assert rendered.count("2 |   input { a: int, a: str }") == 1, rendered
    assert "first declared here" in rendered and "declared again here" in rendered


def test_a_type_and_an_enum_of_one_name_label_the_earlier_as_first(tmp_path: Path) -> None:
    source = "workflow w {\n  type T { a: int }\n  enum T { x, y }\n  stage s { output { x: int } }\n  flow s\n}\n"
    (d,) = _diagnose(tmp_path, source)
    assert d.span is not None and d.span.file.line_col(d.span.start) == (3, 8)
    assert [lab.span.file.line_col(lab.span.start) for lab in d.labels] == [(2, 8)]
