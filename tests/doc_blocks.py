"""The code blocks and links of README.md and docs/*.md, read the way the tests of the docs read them.

A page marks what a test should do with a block by an HTML comment on the line before it:

- `<!-- fragment -->`: a part of a file; it is parsed inside a minimal workflow, not compiled;
- `<!-- file: NAME -->`: a whole file, written under NAME beside the page's other blocks, so
  they can `import` it;
- `<!-- not run: REASON -->` before a `sh`/`console` block: its `wfc` lines are only parsed by
  the CLI's parser, not run (REASON: a worker that runs until stopped, a run id from earlier
  output, PostgreSQL …). Every other `wfc` line of such a block runs and must exit 0
  (`tests/e2e/test_doc_command_lines.py`); `<!-- runnable -->` blocks of docs/cli.md are run by
  `tests/e2e/test_cli_doc.py`.

Everything else in a `wf` block, and a `yaml` block holding a `workflow` with an `id`, is a
whole workflow file and must compile without a diagnostic. Kept in one module so the page
convention is written down once, for the tests and for whoever writes the docs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
"""Every page a newcomer may read, and so every page whose blocks and links are tested."""

_BLOCK = re.compile(
    r"(?:^<!-- (?P<mark>[^>\n]*?) -->\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$",
    re.M | re.S,
)
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\((?P<target>[^)\s]+)\)|!\[[^\]\n]*\]\((?P<image>[^)\s]+)\)")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    language: str
    body: str
    mark: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def fragment(self) -> bool:
        return self.mark == "fragment"

    @property
    def file_name(self) -> str | None:
        if self.mark is not None and self.mark.startswith("file: "):
            return self.mark.removeprefix("file: ").strip()
        return None


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of `page`, in order, with the mark on the line before each."""
    text = page.read_text(encoding="utf-8")
    return [
        Block(
            page=page,
            line=text.count("\n", 0, found.start("lang")) + 1,
            language=found["lang"],
            body=found["body"],
            mark=found["mark"],
        )
        for found in _BLOCK.finditer(text)
    ]


def is_workflow_yaml(block: Block) -> bool:
    """Whether a `yaml` block is meant as a workflow file (a `workflow` mapping at its top)."""
    try:
        data = yaml.safe_load(block.body)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and isinstance(data.get("workflow"), dict)


def links(page: Path) -> list[str]:
    """The targets of the Markdown links and images of `page`, outside code blocks."""
    text = _BLOCK.sub("", page.read_text(encoding="utf-8"))
    return [found["target"] or found["image"] for found in _LINK.finditer(text)]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings: lower case, punctuation dropped."""
    text = _BLOCK.sub("", page.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        candidate, n = slug, 1
        while candidate in found:
            candidate, n = f"{slug}-{n}", n + 1
        found.add(candidate)
    return found
