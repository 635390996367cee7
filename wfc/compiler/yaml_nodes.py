"""Reading YAML nodes for the YAML front end: shapes, scalars and `.wf` fragments, with spans.

Kept apart from the readers of each part of a workflow (`yaml_front`, `yaml_fleet`)
so each of those stays a readable size and they share one way to fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from wfc.compiler import ast
from wfc.compiler.diagnostics import Diagnostic, did_you_mean
from wfc.compiler.parser import parse_rule
from wfc.compiler.source import SourceFile, Span

MAX_YAML_DEPTH = 64
"""Deeper YAML is refused while it is read: PyYAML's composer recurses once per level, so a
few hundred `[` would end in a RecursionError, and no workflow nests past a few levels."""


class DepthLimitedLoader(yaml.SafeLoader):
    """`SafeLoader` that stops at `MAX_YAML_DEPTH` levels with a `ComposerError` at the
    node, which the front end reports like any other YAML error (WF120)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Count the levels on the way down."""
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class YamlProblem(Exception):
    """The first problem found in a YAML file's shape; the front end returns its diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


class NodeReader:
    """Reads YAML nodes into AST pieces, keeping every position a position in the file."""

    def __init__(self, file: SourceFile) -> None:
        self.file = file

    # -- helpers -------------------------------------------------------------

    def span(self, node: Node) -> Span:
        return Span(
            file=self.file,
            start=node.start_mark.index,
            end=max(node.end_mark.index, node.start_mark.index + 1),
        )

    def fail(self, node: Node, message: str, help: str | None = None) -> YamlProblem:
        return YamlProblem(
            Diagnostic(code="WF121", message=message, span=self.span(node), help=help)
        )

    def mapping(self, node: Node, what: str) -> Iterator[tuple[ScalarNode, Node]]:
        if isinstance(node, ScalarNode) and node.value in ("", "~", "null"):
            return
        if not isinstance(node, MappingNode):
            raise self.fail(
                node,
                f"{what} must be a mapping",
                "write `name: value` lines indented under it, or `{name: value, other: value}`",
            )
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                raise self.fail(
                    key, f"keys of {what} must be plain names", "write a key as `name:`"
                )
            yield key, value

    def scalar(self, node: Node, what: str) -> ScalarNode:
        if not isinstance(node, ScalarNode):
            raise self.fail(
                node,
                f"{what} must be a single value",
                "write one value after the `:`; quote it when it holds `: ` or `#`, "
                "or starts with `{` or `[`",
            )
        return node

    def sequence(self, node: Node, what: str) -> list[Node]:
        if isinstance(node, ScalarNode):
            return [node]  # `needs: extract` is fine for one
        if not isinstance(node, SequenceNode):
            raise self.fail(
                node, f"{what} must be a list", "write a list as `[a, b]`, or as `- a` lines"
            )
        return list(node.value)

    def name(self, node: Node, what: str) -> ast.Name:
        scalar = self.scalar(node, what)
        result = self.fragment(scalar, "stage_ref")
        assert isinstance(result, ast.Name)
        return result

    def need(self, node: Node) -> tuple[ast.Name, ast.Name | None]:
        """`extract` or `review?`, as the `.wf` grammar reads one entry of `needs`."""
        scalar = self.scalar(node, "a stage id")
        if "," in scalar.value and not scalar.style:
            names = ", ".join(part.strip() for part in scalar.value.split(","))
            raise self.fail(
                scalar,
                "`needs` with more than one stage is a YAML list",
                f"write `needs: [{names}]`",
            )
        result = self.fragment(scalar, "need")
        assert isinstance(result, tuple)
        return result

    _TRUE = ("true", "yes", "on")
    _FALSE = ("false", "no", "off")

    def boolean(self, node: Node, what: str) -> bool:
        """`true` or `false` (YAML's `yes`/`no`, `on`/`off` too); anything else is a WF122 type
        error, not silently false: `async: ture` would otherwise make a sync stage."""
        scalar = self.scalar(node, what)
        word = scalar.value.lower()
        if word in self._TRUE or word in self._FALSE:
            return word in self._TRUE
        hint = did_you_mean(word, ("true", "false"))
        raise YamlProblem(
            Diagnostic(
                code="WF122",
                message=f"{what} must be `true` or `false`, not `{scalar.value}`",
                span=self.span(scalar),
                label="not a boolean",
                help=hint or f"write {what[:-1]}: true` or {what[:-1]}: false`",
            )
        )

    def string(self, node: Node, what: str) -> ast.Literal_:
        scalar = self.scalar(node, what)
        return ast.Literal_(value=scalar.value, span=self.span(scalar))

    def fragment(self, node: ScalarNode, rule: str) -> object:
        """Parse a scalar's text with one grammar rule, keeping file positions."""
        start = node.start_mark.index + (1 if node.style in ("'", '"') else 0)
        text = self.file.text
        value = node.value
        if text[start : start + len(value)] != value:
            # A folded or escaped scalar: positions cannot be exact, so use the node's start.
            masked = " " * start + value
        else:
            masked = "".join(c if c == "\n" else " " for c in text[:start]) + value
        result = parse_rule(self.file, rule, masked)
        if isinstance(result, Diagnostic):
            raise YamlProblem(result)
        return result

    def keys(self, node: Node, allowed: set[str], what: str) -> dict[str, tuple[ScalarNode, Node]]:
        found: dict[str, tuple[ScalarNode, Node]] = {}
        for key, value in self.mapping(node, what):
            if key.value not in allowed:
                hint = did_you_mean(key.value, allowed)
                raise self.fail(
                    key,
                    f"unknown key `{key.value}` in {what}",
                    hint or "allowed: " + ", ".join(sorted(allowed)),
                )
            if key.value in found:  # YAML loaders would keep the last one without a word
                first = found[key.value][0].start_mark.line + 1
                raise self.fail(
                    key,
                    f"`{key.value}` is given twice in {what} (first on line {first})",
                    f"keep one `{key.value}`",
                )
            found[key.value] = (key, value)
        return found
