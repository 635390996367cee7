"""A key given twice in one YAML mapping of settings is a diagnostic, not "the last wins".

YAML loaders keep the last of two equal keys, so a `.wf.yaml` with `input:` twice under
`workflow` silently lost the first input record, `timeout: 1m` then `timeout: 2m` ran
with 2m, and `id: a` then `id: b` compiled workflow `b`, all with "no problems"; the same
mistakes in a `.wf` file are diagnostics. Named collections (`stages`, fields) already
report a repeated name as WF203, and still do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wfc.compiler.driver import analyse

STAGE = "    s: {input: none, output: {y: str}%s}\n"


def _workflow(*, head: str = "", stage: str = "") -> str:
    return (
        "workflow:\n"
        "  id: a\n"
        f"{head}"
        "  input: {x: str}\n"
        "  output: {y: str}\n"
        "  stages:\n" + STAGE % stage + "  flow: s\n"
    )


def _diagnostics(tmp_path: Path, text: str) -> list[tuple[str, str, int]]:
    path = tmp_path / "repeated.wf.yaml"
    path.write_text(text, encoding="utf-8")
    _, diagnostics = analyse(path)
    return [
        (d.code, d.message, d.span.file.line_col(d.span.start)[0] if d.span else 0)
        for d in diagnostics
    ]


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        pytest.param(_workflow(head="  id: b\n"), "id", 3, id="workflow id"),
        pytest.param(_workflow(head="  input: {z: int}\n"), "input", 4, id="workflow input"),
        pytest.param(_workflow(stage=", timeout: 1m, timeout: 2m"), "timeout", 6, id="timeout"),
        pytest.param("workflow: {id: a}\nworkflow: {id: b}\n", "workflow", 2, id="the file"),
    ],
)
def test_a_repeated_setting_is_a_diagnostic_at_its_second_key(
    tmp_path: Path, text: str, key: str, line: int
) -> None:
    found = _diagnostics(tmp_path, text)
    assert len(found) == 1, found
    code, message, at = found[0]
    assert code == "WF121" and f"`{key}` is given twice" in message, found
    assert at == line, found


def test_a_repeated_stage_is_still_wf203(tmp_path: Path) -> None:
    text = _workflow().replace("  flow: s\n", STAGE % "" + "  flow: s\n")
    assert [code for code, _, _ in _diagnostics(tmp_path, text)] == ["WF203"]
