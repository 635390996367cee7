"""docs/language.md stays true: its `wf` blocks compile cleanly and its graph is what `wfc graph` draws."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT
from wfc.compiler.diagnostics import render_text
from wfc.compiler.driver import compile_path
from wfc.compiler.graph_render import to_mermaid

PAGE = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", PAGE, flags=re.M | re.S)


def test_every_wf_block_compiles_without_a_diagnostic(tmp_path: Path) -> None:
    blocks = _blocks("wf")
    assert blocks
    for index, block in enumerate(blocks):
        source = tmp_path / f"block{index}.wf"
        source.write_text(block, encoding="utf-8")
        result = compile_path(source, tmp_path / f"out{index}", check=True)
        assert result.ok and not result.diagnostics, render_text(result.diagnostics)


def test_each_graph_shown_is_what_wfc_graph_draws_for_a_workflow_of_the_page(
    tmp_path: Path,
) -> None:
    drawn = []
    for index, block in enumerate(_blocks("wf")):
        source = tmp_path / f"block{index}.wf"
        source.write_text(block, encoding="utf-8")
        plan = compile_path(source, check=True).plan
        assert plan is not None
        drawn.append(to_mermaid(plan))
    shown = _blocks("mermaid")
    assert len(shown) == 4  # `when`, `map`, limits and waits
    for graph in shown:
        assert graph in drawn
