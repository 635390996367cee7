"""Inputs that used to crash the checker (RecursionError, ValueError) now get one diagnostic.

PyYAML's composer, the condition checker and the schedule input's conversion all
recurse once per level of nesting, and `int()` refuses more than 4,300 digits:
each case below raised before, out of `wfc check`, as a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.diagnostics import Diagnostic
from wfc.compiler.driver import analyse

STAGE = "stage s { output { x: int } }\n  flow s"
HUGE = "9" * 5000


def _wf(body: str) -> str:
    return "workflow w {\n  " + body + "\n}\n"


def _diagnose(tmp_path: Path, source: str, name: str) -> list[Diagnostic]:
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    _, diagnostics = analyse(path)
    return diagnostics


CASES: list[tuple[str, str, str, str, str]] = [
    (
        "a timeout past 100 years",
        _wf("stage s { output { x: int } timeout 99999999999999999999999999h }\n  flow s"),
        "w.wf",
        "WF307",
        "longer than 100 years",
    ),
    (
        "a 5,000-digit timeout",
        _wf(f"stage s {{ output {{ x: int }} timeout {HUGE}s }}\n  flow s"),
        "w.wf",
        "WF307",
        "longer than 100 years",
    ),
    ("yaml of 500 [", "[" * 500, "w.wf.yaml", "WF120", "nested more than 64 levels"),
    ("yaml of 5000 [", "[" * 5000 + "]" * 5000, "w.wf.yaml", "WF120", "nested more than 64"),
    (
        "yaml nested default",
        "workflow: w\nstages:\n  s:\n    output: {x: {type: json, default: "
        + "[" * 1000
        + "]" * 1000
        + "}}\nflow: [s]\n",
        "w.wf.yaml",
        "WF120",
        "nested more than 64",
    ),
    (
        "when not not not …",
        _wf(
            "input { a: bool }\n  stage s { output { x: int } when "
            + "not " * 2000
            + "input.a }\n  flow s"
        ),
        "w.wf",
        "WF304",
        "condition is nested",
    ),
    (
        "when in a nested list",
        _wf(
            "input { a: int }\n  stage s { output { x: int } when input.a in "
            + "[" * 500
            + "1"
            + "]" * 500
            + " }\n  flow s"
        ),
        "w.wf",
        "WF304",
        "condition is nested",
    ),
    (
        "when > 1e999",
        _wf("input { a: int }\n  stage s { output { x: int } when input.a > 1e999 }\n  flow s"),
        "w.wf",
        "WF308",
        "too large",
    ),
    (
        "schedule input nested",
        _wf(
            'input { a: json }\n  schedule n "0 6 * * *" { input { a: '
            + "[" * 500
            + "]" * 500
            + " } }\n  "
            + STAGE
        ),
        "w.wf",
        "WF304",
        "input is nested",
    ),
    (
        "a 5,000-digit default",
        _wf(f"input {{ a: int = {HUGE} }}\n  {STAGE}"),
        "w.wf",
        "WF308",
        "too large",
    ),
    (
        "a 5,000-digit length",
        _wf(f"input {{ a: str (len 1 .. {HUGE}) }}\n  {STAGE}"),
        "w.wf",
        "WF308",
        "too large",
    ),
    (
        "a length past int64",
        _wf(f"input {{ a: str (len <= {2**63}) }}\n  {STAGE}"),
        "w.wf",
        "WF308",
        "too large",
    ),
    (
        "a 5,000-digit retry",
        _wf(f"stage s {{ output {{ x: int }} retry {HUGE} times }}\n  flow s"),
        "w.wf",
        "WF310",
        "retry",
    ),
]


@pytest.mark.parametrize(
    ("source", "name", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_no_traceback_only_a_diagnostic(
    tmp_path: Path, source: str, name: str, code: str, message: str
) -> None:
    diagnostics = _diagnose(tmp_path, source, name)
    assert [d.code for d in diagnostics] == [code], [d.message for d in diagnostics]
    assert message in diagnostics[0].message
    assert diagnostics[0].location.startswith((tmp_path / name).as_posix() + ":")


def test_a_timeout_of_100_years_is_kept(tmp_path: Path) -> None:
    source = _wf("stage s { output { x: int } timeout 36500d }\n  flow s")
    assert _diagnose(tmp_path, source, "w.wf") == []


def test_a_length_that_fits_is_kept(tmp_path: Path) -> None:
    assert (
        _diagnose(tmp_path, _wf(f"input {{ a: str (len <= {2**63 - 1}) }}\n  {STAGE}"), "w.wf")
        == []
    )


def test_yaml_nested_64_levels_is_read(tmp_path: Path) -> None:
    """The limit is a limit, not a ban on nesting: 50 levels of a list reach the checker."""
    nested = "[" * 50 + "]" * 50
    source = f"workflow: w\nstages:\n  s:\n    output: {{x: {{type: json, default: {nested}}}}}\nflow: [s]\n"
    codes = [d.code for d in _diagnose(tmp_path, source, "w.wf.yaml")]
    assert "WF120" not in codes and codes  # past YAML; the checker refuses 50 > 32 levels
