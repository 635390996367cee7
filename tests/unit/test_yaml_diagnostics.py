"""The YAML form's diagnostics: at the value that is wrong, in YAML's terms, with YAML help."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.diagnostics import Diagnostic, render_text
from wfc.compiler.driver import analyse


def _yaml(stage_a: str, *, more: str = "") -> str:
    return (
        "workflow:\n  id: w\n  stages:\n"
        f"    a: {{output: {{x: int}}{stage_a}}}\n"
        f"    b:\n      output: {{y: int}}\n{more}"
        "  flow: a -> b\n"
    )


def _only(tmp_path: Path, text: str) -> Diagnostic:
    path = tmp_path / "case.wf.yaml"
    path.write_text(text, encoding="utf-8")
    found = analyse(path)[1]
    assert len(found) == 1, render_text(found)
    return found[0]


def _at(d: Diagnostic) -> tuple[int, int]:
    assert d.span is not None
    return d.span.file.line_col(d.span.start)


def test_an_unclosed_quoted_scalar_points_at_its_opening_quote(tmp_path: Path) -> None:
    d = _only(tmp_path, 'workflow:\n  id: w\n  name: "Reviews\n  stages:\n    a: {}\n  flow: a\n')
    assert d.code == "WF120"
    assert _at(d) == (3, 9)
    assert d.help is not None and '`"`' in d.help and "{" not in d.help


def test_an_unfinished_value_is_reported_at_its_end_not_the_file_end(tmp_path: Path) -> None:
    d = _only(tmp_path, _yaml(", retry: 3"))
    assert d.code == "WF101"
    assert _at(d) == (4, 35)
    assert "`times`" in d.message
    assert d.help is not None and "retry: 3 times" in d.help and "`{`" not in d.help


@pytest.mark.parametrize(
    ("value", "hint"), [("ture", "did you mean `true`?"), ("1", "`async: true`")]
)
def test_async_must_be_a_boolean(tmp_path: Path, value: str, hint: str) -> None:
    d = _only(tmp_path, _yaml(f", async: {value}"))
    assert d.code == "WF122"
    assert "`async`" in d.message and value in d.message
    assert _at(d) == (4, 34)
    assert d.help is not None and hint in d.help


def test_async_false_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "case.wf.yaml"
    path.write_text(_yaml(", async: false, input: none"), encoding="utf-8")
    assert analyse(path)[1] == []


def test_needs_with_commas_suggests_a_list(tmp_path: Path) -> None:
    d = _only(tmp_path, _yaml("", more="      needs: a, c\n"))
    assert d.code == "WF121"
    assert _at(d) == (7, 14)
    assert d.help is not None and "needs: [a, c]" in d.help


@pytest.mark.parametrize(
    ("setting", "yaml_help"),
    [
        (", retry: 3 tims", "retry: 3 times"),
        (", timeout: soon", "timeout: 30s"),
        (", poll: 1m", "poll: every 1m"),
        (", map: 3", "map:"),
        (", when: a ==", "when:"),
        (", sleep: -1h", "sleep: 1h"),
    ],
)
def test_help_for_a_yaml_value_shows_yaml(tmp_path: Path, setting: str, yaml_help: str) -> None:
    d = _only(tmp_path, _yaml(setting))
    assert d.help is not None and yaml_help in d.help, d.help
    key = setting.split(":")[0].strip(", ")
    assert f"`{key} " not in d.help and "stage name {" not in d.help  # not the `.wf` form


@pytest.mark.parametrize(
    ("text", "yaml_help"),
    [
        ("workflow:\n  id: w\n  stages: [a, b]\n", "`name: value` lines"),
        (
            "workflow:\n  id: w\n  stages:\n    a: {output: {x: int}, timeout: [1s]}\n",
            "after the `:`",
        ),
        ("workflow:\n  id: w\n  stages:\n    a: {output: {x: int}, needs: {b: 1}}\n", "`[a, b]`"),
    ],
)
def test_a_wrong_shape_has_yaml_help(tmp_path: Path, text: str, yaml_help: str) -> None:
    d = _only(tmp_path, text + "  flow: a\n")
    assert d.code == "WF121"
    assert d.help is not None and yaml_help in d.help
