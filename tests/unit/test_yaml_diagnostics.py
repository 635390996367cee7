"""The YAML form's diagnostics: at the value that is wrong, in YAML's terms, with YAML help."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.checks.yaml_help import yaml_snippet
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


# -- the checker's help lines follow the file's form (checks/yaml_help.py) ----------------


def _all(tmp_path: Path, name: str, text: str) -> list[Diagnostic]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return analyse(path)[1]


def _help(found: list[Diagnostic], code: str) -> str:
    helps = [d.help for d in found if d.code == code and d.help]
    assert len(helps) == 1, render_text(found)
    return helps[0]


# The same mistakes in both forms: (code, the `.wf` file, the `.wf.yaml` file, `.wf` help, YAML help).
_SAME_MISTAKE = [
    (
        "WF309",
        "workflow w { output { x: int }\n"
        "  stage a { output { x: int } poll every 1m }\n  flow a\n}\n",
        "workflow:\n  id: w\n  output: {x: int}\n  stages:\n"
        "    a: {output: {x: int}, poll: every 1m}\n  flow: a\n",
        "`async stage a`",
        "`async: true` on stage `a`",
    ),
    (
        "WF310",
        "workflow w { output { x: int }\n"
        "  stage a { output { x: int } retry 0 times }\n  flow a\n}\n",
        "workflow:\n  id: w\n  output: {x: int}\n  stages:\n"
        "    a: {output: {x: int}, retry: 0 times}\n  flow: a\n",
        "`retry 3 times`",
        "`retry: 3 times`",
    ),
    (
        "WF405",
        "workflow w { output { x: int }\n  stage a { output { x: int } }\n}\n",
        "workflow:\n  id: w\n  output: {x: int}\n  stages:\n    a: {output: {x: int}}\n",
        "`flow a -> …`",
        "`flow: a -> …`",
    ),
    (
        "WF311",
        "workflow w { input { q: int } output { y: int }\n"
        "  stage a { output { x: int } }\n  stage b { output { y: int } }\n"
        "  stage c { input { x: int } output { y: int } }\n  flow a -> b -> c\n}\n",
        "workflow:\n  id: w\n  input: {q: int}\n  output: {y: int}\n  stages:\n"
        "    a: {output: {x: int}}\n    b: {output: {y: int}}\n"
        "    c: {input: {x: int}, output: {y: int}}\n  flow: a -> b -> c\n",
        "use `input none` with `needs a`, or `input from a`",
        "use `input: none` with `needs: a`, or `input: from a`",
    ),
    (
        "WF201",
        "workflow w { output { x: int }\n  stage a { input Zzzqq output { x: int } }\n  flow a\n}\n",
        "workflow:\n  id: w\n  output: {x: int}\n  stages:\n"
        "    a: {input: Zzzqq, output: {x: int}}\n  flow: a\n",
        "declare it with `type`",
        "declare it with `types: {Name: {…}}`",
    ),
    (
        "WF201",
        "workflow w { output { x: int }\n  stage a { output { x: Zzzqq } }\n  flow a\n}\n",
        "workflow:\n  id: w\n  output: {x: int}\n  stages:\n"
        "    a: {output: {x: Zzzqq}}\n  flow: a\n",
        "or `enum`, or `import` the file",
        "or `enums: {Name: [a, b]}`, or `imports: [file.wf]` the file",
    ),
]


@pytest.mark.parametrize(
    ("code", "wf", "yaml", "wf_help", "yaml_help"), _SAME_MISTAKE, ids=[m[0] for m in _SAME_MISTAKE]
)
def test_checker_help_is_spelt_like_the_file(
    tmp_path: Path, code: str, wf: str, yaml: str, wf_help: str, yaml_help: str
) -> None:
    in_wf = _help(_all(tmp_path, "case.wf", wf), code)
    in_yaml = _help(_all(tmp_path, "case.wf.yaml", yaml), code)
    assert wf_help in in_wf and yaml_help not in in_wf
    assert yaml_help in in_yaml and wf_help not in in_yaml


@pytest.mark.parametrize(
    ("wf", "yaml"),
    [
        ("needs a", "needs: a"),
        ("needs a?", 'needs: ["a?"]'),
        ("input from <stage>", "input: from <stage>"),
        ("config { … }", "config: { … }"),
        ("flow a -> b -> …", "flow: a -> b -> …"),
        ("at most 16 at once", "at_most: 16` under `map:"),
        ("wait for approved, timeout 7d", "wait_for: approved, timeout 7d"),
        ("stage name { output { … } }", "stages: {name: {output: {…}}}"),
        ("enum Level { low, high }", "enums: {Level: [low, high]}"),
        ('import "common.wf"', "imports: [common.wf]"),
        (
            'ai "gpt-4o-mini", temperature 0.2, max tokens 500',
            "ai: {model: gpt-4o-mini, temperature: 0.2, max_tokens: 500}",
        ),
        ("x > 0", "x > 0"),
        ("30s", "30s"),
    ],
)
def test_wf_snippets_have_a_yaml_spelling(wf: str, yaml: str) -> None:
    assert yaml_snippet(wf) == yaml


def test_a_needs_suggested_in_yaml_help_is_accepted_as_written(tmp_path: Path) -> None:
    """`needs: ["a?"]`, as the help spells it, is valid YAML the front end reads as `needs a?`."""
    text = (
        "workflow:\n  id: w\n  output: {y: int}\n  stages:\n"
        "    a: {output: {x: int}, when: input.go}\n"
        '    b: {input: none, needs: ["a?"], output: {y: int}}\n'
        "  input: {go: bool}\n  flow: a -> b\n"
    )
    assert [d for d in _all(tmp_path, "case.wf.yaml", text) if d.severity == "error"] == []


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_yaml_file_is_told_how_a_workflow_is_written_in_yaml(
    tmp_path: Path, text: str
) -> None:
    d = _only(tmp_path, text)
    assert d.code == "WF114"
    assert d.help is not None and "workflow: {id:" in d.help and "workflow name {" not in d.help
