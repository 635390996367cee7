"""Parser callbacks for signals and the built-in stages: `signal`, `sleep`, `wait for`.

`AstBuilder` (in `transformer`) inherits these through `WaitCallbacks`; they sit
apart, as the fleet callbacks do, so that module stays a readable size. They
build nodes and spans and never validate: a timeout policy is kept as the name
written, and a repeated option is kept, for the checker to judge.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lark import Token

from wfc.compiler import ast
from wfc.compiler.reduce_actions import Reduced
from wfc.compiler.transformer_fleet import FleetCallbacks


class WaitCallbacks(FleetCallbacks):
    """The callbacks of `signal_decl`, `sleep` and `wait`."""

    def signal_decl(self, meta: Reduced, items: list[Any]) -> ast.Signal:
        docs, name, *payload = items
        return ast.Signal(
            name=self._name(name),
            payload=payload[0] if payload else None,
            doc=docs.text,
            span=self._span(meta),
        )

    def sleep(self, meta: Reduced, items: list[ast.Sleep]) -> tuple[str, ast.Sleep]:
        return ("sleep", replace(items[0], span=self._span(meta)))

    def sleep_for(self, meta: Reduced, items: list[Token]) -> ast.Sleep:
        duration = ast.Duration(text=str(items[0]), span=self._tok_span(items[0]))
        return ast.Sleep(duration=duration, span=self._span(meta))

    def sleep_until(self, meta: Reduced, items: list[ast.DottedName]) -> ast.Sleep:
        return ast.Sleep(until=items[0], span=self._span(meta))

    def sleep_path(self, meta: Reduced, items: list[Any]) -> ast.DottedName:
        """`a.b.c`, built left to right (the rule is left-recursive, as `map_over` is)."""
        *head, last = items
        parts = head[0].parts if head else ()
        return ast.DottedName(parts=(*parts, self._name(last)), span=self._span(meta))

    def wait(self, meta: Reduced, items: list[ast.Wait]) -> tuple[str, ast.Wait]:
        return ("wait", replace(items[0], span=self._span(meta)))

    def wait_spec(self, meta: Reduced, items: list[Any]) -> ast.Wait:
        signal, *options = items
        return ast.Wait(
            signal=self._name(signal),
            timeouts=tuple(v for k, v in options if k == "timeout"),
            on_timeout=tuple(v for k, v in options if k == "on_timeout"),
            span=self._span(meta),
        )

    def wait_timeout(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Duration]:
        return ("timeout", ast.Duration(text=str(items[0]), span=self._tok_span(items[0])))

    def wait_on_timeout(self, meta: Reduced, items: list[Token]) -> tuple[str, ast.Name]:
        return ("on_timeout", self._name(items[0]))
