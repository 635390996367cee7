"""Lark callbacks for queues, fleet limits and schedules, and the span helpers every callback uses.

`AstBuilder` (in `transformer`) inherits these; they sit apart so that module
stays a readable size. Like the rest of the transformer, they build nodes and
spans and never validate: a rate's unit or a schedule's policy is kept as the
name written, for the checker to judge.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

from lark import Token, Transformer_NonRecursive, Tree, v_args
from lark.exceptions import VisitError
from lark.tree import Meta

from wfc.compiler import ast
from wfc.compiler.source import SourceFile, Span


def unquote(token_text: str) -> str:
    """The value of a STRING token: JSON string escapes, which every editor highlights right."""
    try:
        value = json.loads(token_text)
    except ValueError:
        return token_text[1:-1]
    return value if isinstance(value, str) else token_text[1:-1]


def parse_number(text: str) -> int | float:
    """An int when the text has no fraction or exponent, else a float. An integer too long for
    `int()` (past 4,300 digits) is infinite, which the checker reports as too large."""
    if any(c in text for c in ".eE"):
        return float(text)
    if len(text) > 4000:
        return -math.inf if text.startswith("-") else math.inf
    return int(text)


@cache
def _callback(cls: type, rule: str) -> Callable[..., Any] | None:
    """The plain function `cls` has for `rule` (under its `v_args(meta=True)` wrapper), or None."""
    for klass in cls.__mro__:
        found = vars(klass).get(str(rule))
        if found is not None:
            return getattr(found, "base_func", found)  # type: ignore[no-any-return]
    return None


@v_args(meta=True)
class FleetCallbacks(Transformer_NonRecursive[Token, Any]):
    """Span helpers, then the callbacks of `wf_queue`, `schedule`, `stage_queue`,
    `concurrency` and `rate`. A transformer itself, so that `v_args` wraps these
    callbacks here: lark's `v_args` on `AstBuilder` wraps only what it defines."""

    def __init__(self, file: SourceFile) -> None:
        # No callback is named after a terminal, so tokens are left as they are rather than
        # each looked up (and missed, through an AttributeError) by lark.
        super().__init__(visit_tokens=False)
        self.file = file

    # -- dispatch ------------------------------------------------------------

    def _call_userfunc(self, tree: Tree[Token], new_children: list[Any] | None = None) -> Any:
        """Call the callback of `tree`'s rule with its meta and children, as lark does, but
        through a per-class table: lark's own lookup makes a new `v_args` wrapper (and copies
        the function's attributes onto it) at every node, a quarter of the transform's time."""
        children = tree.children if new_children is None else new_children
        callback = _callback(type(self), tree.data)
        if callback is None:
            return self.__default__(tree.data, children, tree.meta)  # type: ignore[no-untyped-call]
        try:
            return callback(self, tree.meta, children)
        except Exception as error:
            raise VisitError(tree.data, tree, error) from error  # type: ignore[no-untyped-call]

    # -- helpers -------------------------------------------------------------

    def _span(self, meta: Meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(file=self.file, start=0, end=0)
        return Span(file=self.file, start=meta.start_pos, end=meta.end_pos)

    def _tok_span(self, token: Token) -> Span:
        start = token.start_pos or 0
        end = token.end_pos if token.end_pos is not None else start + len(token)
        return Span(file=self.file, start=start, end=end)

    def _name(self, token: Token) -> ast.Name:
        return ast.Name(value=str(token), span=self._tok_span(token))

    def _string_literal(self, token: Token) -> ast.Literal_:
        return ast.Literal_(value=unquote(token), span=self._tok_span(token))

    def wf_queue(self, meta: Meta, items: list[Token]) -> tuple[str, ast.Literal_]:
        return ("queue", self._string_literal(items[0]))

    # -- schedules ---------------------------------------------------------------

    def schedule(self, meta: Meta, items: list[Any]) -> ast.Schedule:
        name, cron, *rest = items
        zone = next((i for i in rest if isinstance(i, ast.Literal_)), None)
        lines: list[tuple[str, Any]] = next((i for i in rest if isinstance(i, list)), [])
        return ast.Schedule(
            name=self._name(name),
            cron=self._string_literal(cron),
            timezone=zone,
            inputs=tuple(v for k, v in lines if k == "input"),
            catch_ups=tuple(v for k, v in lines if k == "catch_up"),
            overlaps=tuple(v for k, v in lines if k == "overlap"),
            span=self._span(meta),
        )

    def schedule_zone(self, meta: Meta, items: list[Token]) -> ast.Literal_:
        return self._string_literal(items[0])

    def schedule_body(self, meta: Meta, items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        return list(items)

    def schedule_input(self, meta: Meta, items: list[ast.ObjectValue]) -> tuple[str, Any]:
        return ("input", items[0])

    def schedule_catch_up(self, meta: Meta, items: list[Token]) -> tuple[str, ast.Name]:
        return ("catch_up", self._name(items[0]))

    def schedule_overlap(self, meta: Meta, items: list[Token]) -> tuple[str, ast.Name]:
        return ("overlap", self._name(items[0]))

    # -- queues and limits ---------------------------------------------------------

    def stage_queue(self, meta: Meta, items: list[Token]) -> tuple[str, ast.Literal_]:
        return ("queue", self._string_literal(items[0]))

    def concurrency(self, meta: Meta, items: list[ast.Concurrency]) -> tuple[str, ast.Concurrency]:
        return ("concurrency", replace(items[0], span=self._span(meta)))

    def concurrency_spec(self, meta: Meta, items: list[Any]) -> ast.Concurrency:
        number, *per = items
        return ast.Concurrency(
            max=ast.Literal_(value=parse_number(number), span=self._tok_span(number)),
            per=per[0] if per else None,
            span=self._span(meta),
        )

    def limit_path(self, meta: Meta, items: list[Any]) -> ast.DottedName:
        """`a.b.c`, built left to right (the rule is left-recursive, as `map_over` is)."""
        *head, last = items
        parts = head[0].parts if head else ()
        return ast.DottedName(parts=(*parts, self._name(last)), span=self._span(meta))

    def limit_path_spec(self, meta: Meta, items: list[ast.DottedName]) -> ast.DottedName:
        return items[0]

    def rate(self, meta: Meta, items: list[ast.Rate]) -> tuple[str, ast.Rate]:
        return ("rate", replace(items[0], span=self._span(meta)))

    def rate_spec(self, meta: Meta, items: list[Any]) -> ast.Rate:
        number, unit, *shared = items
        return ast.Rate(
            max=ast.Literal_(value=parse_number(number), span=self._tok_span(number)),
            unit=self._name(unit),
            shared=shared[0] if shared else None,
            span=self._span(meta),
        )

    def rate_shared(self, meta: Meta, items: list[Token]) -> ast.Literal_:
        return self._string_literal(items[0])
