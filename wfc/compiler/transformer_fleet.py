"""Parser callbacks for queues, fleet limits and schedules, and the span helpers every callback uses.

`AstBuilder` (in `transformer`) inherits these; they sit apart so that module
stays a readable size. Like the rest of the transformer, they build nodes and
spans and never validate: a rate's unit or a schedule's policy is kept as the
name written, for the checker to judge.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

from lark import Token

from wfc.compiler import ast
from wfc.compiler.reduce_actions import Reduced
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


class FleetCallbacks:
    """Span helpers, then the callbacks of `wf_queue`, `schedule`, `stage_queue`,
    `concurrency` and `rate`. Callbacks are plain methods `rule(self, meta, children)`,
    called by `reduce_actions` as the parser reduces each rule."""

    def __init__(self, file: SourceFile) -> None:
        self.file = file

    # -- helpers -------------------------------------------------------------

    def _span(self, meta: Reduced) -> Span:
        if meta.empty:
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

    def wf_queue(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return ("queue", self._string_literal(items[0]))

    # -- schedules ---------------------------------------------------------------

    def schedule(self, meta: Reduced, items: list[Any]) -> ast.Schedule:
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

    def schedule_zone(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return self._string_literal(items[0])

    def schedule_body(self, meta: Reduced, items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        return list(items)

    def schedule_input(self, meta: Reduced, items: list[ast.ObjectValue]) -> tuple[str, Any]:
        return ("input", items[0])

    def schedule_catch_up(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Name]:
        return ("catch_up", self._name(items[0]))

    def schedule_overlap(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Name]:
        return ("overlap", self._name(items[0]))

    # -- queues and limits ---------------------------------------------------------

    def stage_queue(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Literal_]:
        return ("queue", self._string_literal(items[0]))

    def concurrency(
        self, meta: Reduced, items: list[ast.Concurrency]
    ) -> tuple[str, ast.Concurrency]:
        return ("concurrency", replace(items[0], span=self._span(meta)))

    def concurrency_spec(self, meta: Reduced, items: list[Any]) -> ast.Concurrency:
        number, *per = items
        return ast.Concurrency(
            max=ast.Literal_(value=parse_number(number), span=self._tok_span(number)),
            per=per[0] if per else None,
            span=self._span(meta),
        )

    def limit_path(self, meta: Reduced, items: list[Any]) -> ast.DottedName:
        """`a.b.c`, built left to right (the rule is left-recursive, as `map_over` is)."""
        *head, last = items
        parts = head[0].parts if head else ()
        return ast.DottedName(parts=(*parts, self._name(last)), span=self._span(meta))

    def limit_path_spec(self, meta: Reduced, items: list[ast.DottedName]) -> ast.DottedName:
        return items[0]

    def rate(self, meta: Reduced, items: list[ast.Rate]) -> tuple[str, ast.Rate]:
        return ("rate", replace(items[0], span=self._span(meta)))

    def rate_spec(self, meta: Reduced, items: list[Any]) -> ast.Rate:
        number, unit, *shared = items
        return ast.Rate(
            max=ast.Literal_(value=parse_number(number), span=self._tok_span(number)),
            unit=self._name(unit),
            shared=shared[0] if shared else None,
            span=self._span(meta),
        )

    def rate_shared(self, meta: Reduced, items: list[Token]) -> ast.Literal_:
        return self._string_literal(items[0])
