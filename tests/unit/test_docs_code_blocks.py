"""README.md and docs/*.md stay true: their workflow blocks compile and their links resolve.

A newcomer copies these blocks first, so a block that no longer compiles, a YAML form that
no longer means what the `.wf` beside it means, or a link to a page that moved is a bug.
The page conventions (`<!-- fragment -->`, `<!-- file: NAME -->`) are in `tests/doc_blocks.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.doc_blocks import PAGES, Block, anchors, blocks, is_workflow_yaml, links
from wfc.compiler.diagnostics import Diagnostic, render_text
from wfc.compiler.driver import compile_path
from wfc.compiler.parser import parse_source
from wfc.compiler.source import SourceFile
from wfc.compiler.yaml_front import parse_yaml
from wfc.plan import Plan

_NO_WORKFLOW = "WF220"


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _workflow_blocks(page: Path) -> list[Block]:
    return [
        b
        for b in blocks(page)
        if b.language == "wf" or (b.language == "yaml" and (b.fragment or is_workflow_yaml(b)))
    ]


def _file_name(block: Block, index: int) -> str:
    if block.file_name is not None:
        return block.file_name
    return f"block{index}.wf" if block.language == "wf" else f"block{index}.wf.yaml"


def _parse_fragment(block: Block, where: Path) -> Diagnostic | None:
    """Parse a fragment inside a minimal workflow (or as it is, when it is one already)."""
    body = block.body
    if block.language == "wf":
        whole = body.lstrip().startswith(("workflow", "import", "##"))
        source = SourceFile(
            path=where, text=body if whole else "workflow fragment {\n" + body + "}\n"
        )
        parsed = parse_source(source)
    else:
        whole = re.match(r"(workflow|imports|types|enums):", body) is not None
        wrapped = "workflow:\n  id: fragment\n  stages:\n" + body
        parsed = parse_yaml(SourceFile(path=where, text=body if whole else wrapped))
    return parsed if isinstance(parsed, Diagnostic) else None


def _compile_page(page: Path, tmp_path: Path) -> list[tuple[Block, Plan | None]]:
    """Write every whole file of the page into one directory, then compile each."""
    found = _workflow_blocks(page)
    files: list[tuple[Block, Path]] = []
    for index, block in enumerate(found):
        path = tmp_path / _file_name(block, index)
        path.write_text(block.body, encoding="utf-8")
        if block.fragment:
            problem = _parse_fragment(block, path)
            assert problem is None, f"{block.where}: {render_text([problem])}"
        else:
            files.append((block, path))
    compiled = []
    for block, path in files:
        result = compile_path(path, tmp_path / "out" / path.name, check=True)
        diagnostics = [d for d in result.diagnostics if d.code != _NO_WORKFLOW]
        assert not diagnostics, f"{block.where}:\n{render_text(diagnostics)}"
        compiled.append((block, result.plan))
    return compiled


@pytest.mark.parametrize("page", [p for p in PAGES if _workflow_blocks(p)], ids=_page_id)
def test_every_workflow_block_of_the_page_compiles_without_a_diagnostic(
    page: Path, tmp_path: Path
) -> None:
    _compile_page(page, tmp_path)  # asserts each block's diagnostics itself


@pytest.mark.parametrize("page", [p for p in PAGES if _workflow_blocks(p)], ids=_page_id)
def test_a_yaml_form_means_what_the_wf_form_before_it_means(page: Path, tmp_path: Path) -> None:
    """A YAML block after a `.wf` block of the same workflow id compiles to the same plan."""
    seen: dict[str, Plan] = {}
    for block, plan in _compile_page(page, tmp_path):
        if plan is None:
            continue
        if block.language == "yaml" and plan.workflow_id in seen:
            assert plan == seen[plan.workflow_id], f"{block.where}: another plan than the .wf's"
        elif block.language == "wf":
            seen[plan.workflow_id] = plan


def test_the_language_reference_pairs_its_forms_and_marks_its_fragments() -> None:
    """Guards the test itself: the pairs and fragments it relies on are there to check."""
    page = ROOT / "docs" / "language.md"
    found = _workflow_blocks(page)
    assert sum(b.language == "yaml" and not b.fragment for b in found) >= 4
    assert any(b.fragment for b in found) and any(b.file_name for b in found)


def test_no_code_block_that_is_a_workflow_goes_untested() -> None:
    """An unlabelled or `text` block holding a workflow would escape the compile test."""
    untested = [
        b.where
        for page in PAGES
        for b in blocks(page)
        if b.language in ("", "text") and re.match(r"\s*(workflow|stage|import) ", b.body)
    ]
    assert untested == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_of_the_page_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not ours to check offline
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_the_page_stands_alone(page: Path) -> None:
    """Docs name no file outside the repository, and every doc page they name exists."""
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text
    named = set(re.findall(r"(?<![\w/.])docs/[\w-]+\.md", text))
    assert [n for n in sorted(named) if not (ROOT / n).is_file()] == []


def test_the_anchors_are_read_as_github_makes_them(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '# A `when`: run it\n## Schedules: `schedule nightly "0 6 * * *"`\n## A\n## A\n'
    )
    assert anchors(page) == {"a-when-run-it", "schedules-schedule-nightly-0-6---", "a", "a-1"}


def _missing_types() -> list[str]:
    """The names the language reference says are not types: the first column of its table."""
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = text.split("### Types that do not exist", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [
        name
        for row in rows
        for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])
        if re.fullmatch(r"[A-Za-z]+", name)
    ]


def test_the_types_the_reference_says_do_not_exist_are_refused(tmp_path: Path) -> None:
    names = _missing_types()
    assert {"dict", "any", "bytes", "uuid", "decimal"} <= set(names)
    for name in names:
        source = tmp_path / f"{name}.wf"
        source.write_text(
            f"workflow w {{ input {{ x: {name} }} output {{}} stage s {{}} flow s }}\n",
            encoding="utf-8",
        )
        codes = {d.code for d in compile_path(source, check=True).diagnostics}
        assert codes & {"WF201", "WF101"}, f"`{name}` compiled: {codes}"


def _retry_rows() -> list[tuple[str, int, list[int], int | None]]:
    """(setting, attempts, first delays in seconds, most minutes) of the reference's retry table."""
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = text.split("### `retry`: attempts and backoff", 1)[1].split("\n### ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) != 3 or not cells[1].isdigit():
            continue
        setting = "" if cells[0] == "(nothing)" else cells[0].strip("`")
        delays = [int(s) for s in re.findall(r"(\d+) s\b", cells[2])]
        most = re.search(r"at most (\d+) m\b", cells[2])
        rows.append((setting, int(cells[1]), delays, int(most[1]) if most else None))
    return rows


def test_the_retry_table_says_what_the_compiler_does(tmp_path: Path) -> None:
    """`retry N times` is N attempts, 3 without `retry`, with the delays the table lists."""
    rows = _retry_rows()
    assert ("", 3, [1, 2], 1) in rows and len(rows) >= 5
    for setting, attempts, delays, most in rows:
        source = tmp_path / "retry.wf"
        source.write_text(
            f"workflow w {{ input {{}} output {{}} stage s {{ {setting} }} flow s }}\n"
        )
        plan = compile_path(source, check=True).plan
        assert plan is not None, setting
        retry = plan.stages[0].retry
        assert retry.max_attempts == attempts, setting
        assert [retry.delay_ms(n) for n in range(1, len(delays) + 1)] == [d * 1000 for d in delays]
        if most is not None:
            assert retry.backoff_max_ms == most * 60_000, setting
