"""Names the generated code would trip on are diagnostics, never a package that breaks.

Each case below once passed `wfc check` and then gave a package that did not import
or did not type-check: an enum member `and` (a syntax error), a type `Field` (it
replaces pydantic's `Field`), a stage `metric` (its property overrides the context's
method), `load_data` beside `loadData` (one class name for both), a workflow `json`
(the standard library's module is loaded instead), a bound `1e999` (`inf` in the
models, `Infinity` in plan.json), a default nested hundreds of levels deep (a
RecursionError). Each must now be one error with a caret under the name and a help.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.diagnostics import Diagnostic, Severity, render_text
from wfc.compiler.driver import analyse

OK_STAGE = "stage s { output { x: int } }\n  flow s"


def _wf(body: str, wf_id: str = "w") -> str:
    return f"workflow {wf_id} {{\n  " + body + "\n}\n"


# (name, source, code, text under the caret, message fragment)
CASES: list[tuple[str, str, str, str, str]] = [
    ("enum member and", _wf("enum E { and, b }\n  " + OK_STAGE), "WF205", "and", "enum member"),
    ("enum member class", _wf("enum E { a, class }\n  " + OK_STAGE), "WF205", "class", "enum"),
    ("enum member mro", _wf("enum E { mro }\n  " + OK_STAGE), "WF205", "mro", "enum member"),
    ("enum member upper", _wf("enum E { upper }\n  " + OK_STAGE), "WF205", "upper", "enum"),
    ("field global", _wf("input { global: int }\n  " + OK_STAGE), "WF205", "global", "field"),
    (
        "field datetime",
        _wf("input { datetime: datetime, d: date }\n  " + OK_STAGE),
        "WF205",
        "datetime",
        "field",
    ),
    ("field str", _wf("input { str: str, b: str }\n  " + OK_STAGE), "WF205", "str", "field"),
    ("field Field", _wf("input { Field: int (>= 1) }\n  " + OK_STAGE), "WF205", "Field", "field"),
    (
        "field named like a type",
        _wf("enum L { a, b }\n  input { L: L = a, b: L }\n  " + OK_STAGE),
        "WF205",
        "L",
        "field",
    ),
    ("type Field", _wf("type Field { a: int }\n  " + OK_STAGE), "WF205", "Field", "type"),
    ("type Stage", _wf("type Stage { a: int }\n  " + OK_STAGE), "WF205", "Stage", "type"),
    ("enum Workflow", _wf("enum Workflow { a }\n  " + OK_STAGE), "WF205", "Workflow", "enum"),
    ("type class", _wf("type class { a: int }\n  " + OK_STAGE), "WF205", "class", "type"),
    ("enum None", _wf("enum None { a }\n  " + OK_STAGE), "WF205", "None", "enum"),
    ("type dict", _wf("type dict { a: int }\n  " + OK_STAGE), "WF205", "dict", "type"),
    (
        "stage metric",
        _wf("stage metric { output { x: int } }\n  flow metric"),
        "WF205",
        "metric",
        "stage",
    ),
    (
        "stage stage",  # its context class would be `StageContext`, the runtime's base
        _wf("stage stage { output { x: int } }\n  flow stage"),
        "WF209",
        "stage",
        "StageContext",
    ),
    (
        "load_data and loadData",
        _wf(
            "stage load_data { output { x: int } }\n  stage loadData { output { y: int } }\n"
            "  flow load_data -> loadData"
        ),
        "WF209",
        "loadData",
        "LoadData",
    ),
    (
        "a_ and a",
        _wf("stage a_ { output { x: int } }\n  stage a { output { y: int } }\n  flow a_ -> a"),
        "WF209",
        "a",
        "`A`",
    ),
    (
        "a type named like a stage's class",
        _wf("type SStage { a: int }\n  input { t: SStage }\n  " + OK_STAGE),
        "WF209",
        "SStage",
        "stage `s`",
    ),
    (
        "async s and s_check",
        _wf(
            "async stage s { output { x: int } poll every 1m }\n"
            "  stage s_check { output { y: int } }\n  flow s -> s_check"
        ),
        "WF209",
        "s_check",
        "SCheckContext",
    ),
    ("workflow json", _wf(OK_STAGE, "json"), "WF205", "json", "standard library"),
    ("workflow email", _wf(OK_STAGE, "email"), "WF205", "email", "standard library"),
    ("workflow JSON", _wf(OK_STAGE, "JSON"), "WF205", "JSON", "standard library"),
    ("workflow pydantic", _wf(OK_STAGE, "pydantic"), "WF205", "pydantic", "module"),
    ("workflow wfc", _wf(OK_STAGE, "wfc"), "WF205", "wfc", "module"),
    (
        "bound 1e999",
        _wf("input { a: float (<= 1e999) }\n  " + OK_STAGE),
        "WF308",
        "1e999",
        "too large",
    ),
    (
        "bound -1e999",
        _wf("input { a: float (>= -1e999) }\n  " + OK_STAGE),
        "WF308",
        "-1e999",
        "too large",
    ),
    (
        "default 1e999",
        _wf("input { a: float = 1e999 }\n  " + OK_STAGE),
        "WF308",
        "1e999",
        "too large",
    ),
    (
        "default in a list 1e999",
        _wf("input { a: json = [1, [2e999]] }\n  " + OK_STAGE),
        "WF308",
        "2e999",
        "too large",
    ),
    (
        "default nested 300 deep",
        _wf("input { a: json = " + "[" * 300 + "]" * 300 + " }\n  " + OK_STAGE),
        "WF304",
        "[" * 300 + "]" * 300,
        "nested more than",
    ),
    (
        "object default nested 5000 deep",
        _wf("input { a: json = " + "{a: " * 5000 + "1" + "}" * 5000 + " }\n  " + OK_STAGE),
        "WF304",
        "{a: " * 5000 + "1" + "}" * 5000,
        "nested more than",
    ),
]


def _diagnose(tmp_path: Path, source: str, name: str = "case.wf") -> list[Diagnostic]:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    _, diagnostics = analyse(path)
    return diagnostics


@pytest.mark.parametrize(
    ("source", "code", "under", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_name_the_generated_code_trips_on_is_one_error(
    tmp_path: Path, source: str, code: str, under: str, message: str
) -> None:
    diagnostics = _diagnose(tmp_path, source)
    assert [d.code for d in diagnostics] == [code], [str(d.message) for d in diagnostics]
    d = diagnostics[0]
    assert d.severity is Severity.ERROR
    assert d.span is not None and d.span.file.text[d.span.start : d.span.end] == under
    assert message in d.message
    assert d.help
    rendered = render_text([d])
    assert f"[{code}]" in rendered and "^" in rendered and "case.wf:" in rendered


@pytest.mark.parametrize(
    "body",
    [
        "enum E { name, value, low }\n  input { e: E = name }\n  " + OK_STAGE,
        "input { date_time: datetime, json_value: json, url: url }\n  " + OK_STAGE,
        "type Label { a: int }\n  input { label: Label }\n  " + OK_STAGE,
        "stage load { output { x: int } }\n  stage load_data { needs load output { y: int } }\n"
        "  flow load -> load_data",
        "input { a: float (<= 1e300) = 1e-300 }\n  " + OK_STAGE,
        "input { a: json = " + "[" * 30 + "]" * 30 + " }\n  " + OK_STAGE,
        # `CheckContext` is imported only beside an async stage: a sync `check` is fine.
        "stage check { output { x: int } }\n  flow check",
    ],
    ids=[
        "enum name/value",
        "lowercase",
        "type Label",
        "load and load_data",
        "1e300",
        "30 deep",
        "sync check",
    ],
)
def test_near_misses_are_accepted(tmp_path: Path, body: str) -> None:
    assert _diagnose(tmp_path, _wf(body)) == []


def test_a_clash_inside_an_imported_file_points_there(tmp_path: Path) -> None:
    (tmp_path / "common.wf").write_text("type Field { a: int }\n", encoding="utf-8")
    diagnostics = _diagnose(tmp_path, 'import "common.wf"\n' + _wf(OK_STAGE))
    assert [d.code for d in diagnostics] == ["WF205"]
    assert diagnostics[0].location.startswith((tmp_path / "common.wf").as_posix())
