"""docs/language.md stays true: each graph it shows is what `wfc graph` draws for one of its workflows.

That every block of the page compiles is `test_docs_code_blocks.py`'s job, for every page.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT
from tests.doc_blocks import blocks
from wfc.compiler.driver import compile_path
from wfc.compiler.graph_render import to_mermaid

PAGE = ROOT / "docs" / "language.md"


def test_each_graph_shown_is_what_wfc_graph_draws_for_a_workflow_of_the_page(
    tmp_path: Path,
) -> None:
    found = blocks(PAGE)
    sources = []
    for index, block in enumerate(b for b in found if b.language == "wf" and not b.fragment):
        source = tmp_path / (block.file_name or f"block{index}.wf")
        source.write_text(block.body, encoding="utf-8")
        sources.append(source)
    drawn = []
    for source in sources:
        plan = compile_path(source, check=True).plan
        if plan is not None:  # a file of shared types only
            drawn.append(to_mermaid(plan))
    shown = [b.body for b in found if b.language == "mermaid"]
    assert len(shown) == 4  # `when`, `map`, limits and waits
    for graph in shown:
        assert graph in drawn
