"""Defaults and bounds the generated code and plan.json can hold.

A bound of `1e999` is infinity: it reaches the models as `inf` (a NameError on
import) and plan.json as `Infinity` (not JSON). An integer past 64 bits overflows
pydantic's length checks and PostgreSQL's integers. A default nested hundreds of
levels deep overflows the recursion of everything that walks it later (the
checker, the plan's serialiser, the printer), so it is refused here first, by a
walk that does not recurse.
"""

from __future__ import annotations

import dataclasses
import math
import re

from wfc.compiler import ast
from wfc.compiler.checks.context import Analysis
from wfc.compiler.source import Span

MAX_VALUE_DEPTH = 32
"""Lists and objects nested deeper than this in a default are refused, like types."""

LARGEST_INT = 2**63 - 1
"""Whole numbers beyond a signed 64-bit integer do not survive pydantic or PostgreSQL."""

LARGEST_INT32 = 2**31 - 1
"""The largest `priority`, `retry` count and `concurrency`/`rate` bound: each is stored per
job in an INTEGER column, 32-bit on PostgreSQL (a larger one failed every run there)."""

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def number_too_large(value: object) -> bool:
    """Infinity (from `1e999`), or an integer no 64-bit field holds."""
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and abs(value) > LARGEST_INT


def check_default_value(an: Analysis, f: ast.Field) -> bool:
    """Report a default nested too deep or a number too large in a default or a bound."""
    ok = True
    for constraint in f.constraints:
        if number_too_large(constraint.value):
            _too_large(an, _number_span(constraint.span))
            ok = False
    if f.default is None:
        return ok
    stack: list[tuple[ast.Value, int]] = [(f.default, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, ast.Literal_) and number_too_large(value.value):
            _too_large(an, value.span)
            ok = False
        if not isinstance(value, ast.ListValue | ast.ObjectValue):
            continue
        if depth > MAX_VALUE_DEPTH:
            an.error(
                "WF304",
                f"default is nested more than {MAX_VALUE_DEPTH} levels deep",
                f.default.span,
                help="give a flatter default, or none and fill it in `execute`",
            )
            return False
        inner = value.items if isinstance(value, ast.ListValue) else [v for _, v in value.entries]
        stack.extend((item, depth + 1) for item in inner)
    return ok


def _children(node: object) -> list[object]:
    """The AST nodes directly inside `node` (through tuples, `(key, value)` pairs too)."""
    found: list[object] = []
    pending: list[object] = [
        getattr(node, f.name)
        for f in dataclasses.fields(node)  # type: ignore[arg-type]
    ]
    while pending:
        item = pending.pop()
        if isinstance(item, tuple | list):
            pending.extend(item)
        elif dataclasses.is_dataclass(item) and type(item).__module__ == ast.__name__:
            found.append(item)
    return found


def check_nesting(an: Analysis, node: object, what: str, span: Span) -> bool:
    """Report `node` (a condition, a schedule's input) when nested past `MAX_VALUE_DEPTH`
    levels or holding a number too large; the walk itself never recurses."""
    ok = True
    stack: list[tuple[object, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > 2 * MAX_VALUE_DEPTH:  # an expression spends two levels per operator
            an.error(
                "WF304",
                f"{what} is nested more than {MAX_VALUE_DEPTH} levels deep",
                span,
                help=f"write a flatter {what}",
            )
            return False
        if isinstance(item, ast.Literal_) and number_too_large(item.value):
            _too_large(an, item.span)
            ok = False
        stack.extend((child, depth + 1) for child in _children(item))
    return ok


def _number_span(span: Span) -> Span:
    """The first too-large number inside a constraint (`<= 1e999`, `1 .. 1e999`)."""
    text = span.file.text[span.start : span.end]
    for found in _NUMBER.finditer(text):
        number: float = float(found.group())
        if "." not in found.group() and "e" not in found.group().lower():
            number = int(found.group()) if len(found.group()) < 4000 else math.inf
        if number_too_large(number):
            return Span(
                file=span.file, start=span.start + found.start(), end=span.start + found.end()
            )
    return span


def _too_large(an: Analysis, span: Span) -> None:
    an.error(
        "WF308",
        "number too large: it would be infinite, or past a 64-bit integer",
        span,
        label="too large",
        help=f"write a number of at most {LARGEST_INT} (about 1.7e308 for a `float`)",
    )
