"""Checking a JSON value against a JSON Schema: a signal's payload (`run.signal`).

A signal is sent from outside a run, by a program or an operator, so its payload
is checked before it is kept: a wrong one is refused with every failing field
named, rather than handed to the stages after the wait. The schemas are the ones
the compiler writes (`wfc.compiler.schema`): `type` (one or a list), `properties`,
`required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`/`oneOf`,
local `$ref`s to `#/$defs/…`, the bounds (`minimum`, `exclusiveMaximum`,
`minLength`, `maxItems`…), `pattern`, and the `date-time` and `date` formats.
Other keywords (descriptions, titles, defaults) are annotations and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

JsonSchema = dict[str, Any]

_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}

_BOUNDS: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
    ("minimum", lambda v, b: v >= b, "at least"),
    ("maximum", lambda v, b: v <= b, "at most"),
    ("exclusiveMinimum", lambda v, b: v > b, "more than"),
    ("exclusiveMaximum", lambda v, b: v < b, "less than"),
)

_SIZES: tuple[tuple[str, type[str | list[Any] | dict[str, Any]], str, bool], ...] = (
    ("minLength", str, "characters", True),
    ("maxLength", str, "characters", False),
    ("minItems", list, "items", True),
    ("maxItems", list, "items", False),
    ("minProperties", dict, "fields", True),
    ("maxProperties", dict, "fields", False),
)


def payload_problems(schema: JsonSchema, value: Any) -> list[str]:
    """One `path: message` line per way `value` fails `schema` (`(root)` for the value
    itself); empty when it fits."""
    problems: list[str] = []
    _check(schema, value, "", schema.get("$defs", {}), problems)
    return problems


def _check(schema: Any, value: Any, path: str, defs: dict[str, Any], out: list[str]) -> None:
    if not isinstance(schema, dict):
        if schema is False:
            out.append(f"{path or '(root)'}: not allowed")
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        _check(defs.get(ref.removeprefix("#/$defs/"), {}), value, path, defs, out)
    where = path or "(root)"
    for keyword in ("anyOf", "oneOf"):
        options = schema.get(keyword)
        if options and not any(_fits(option, value, defs) for option in options):
            out.append(f"{where}: fits none of the allowed shapes")
            return
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        if not any(_TYPES.get(name, lambda v: True)(value) for name in names):
            out.append(f"{where}: expected {' or '.join(names)}, got {_kind(value)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(member) for member in schema["enum"])
        out.append(f"{where}: {value!r} is not one of {allowed}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}: must be {schema['const']!r}")
    _check_scalar(schema, value, where, out)
    if isinstance(value, dict):
        _check_object(schema, value, path, defs, out)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(schema["items"], item, f"{path}[{index}]", defs, out)


def _check_scalar(schema: JsonSchema, value: Any, where: str, out: list[str]) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        for keyword, holds, words in _BOUNDS:
            if keyword in schema and not holds(value, schema[keyword]):
                out.append(f"{where}: must be {words} {schema[keyword]}")
    for keyword, kind, unit, is_min in _SIZES:
        if keyword in schema and isinstance(value, str | list | dict) and isinstance(value, kind):
            size, bound = len(value), schema[keyword]
            if (size < bound) if is_min else (size > bound):
                words = "at least" if is_min else "at most"
                out.append(f"{where}: must have {words} {bound} {unit}")
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, value) is None:
            out.append(f"{where}: does not match {pattern!r}")
        problem = _format_problem(schema.get("format"), value)
        if problem:
            out.append(f"{where}: {problem}")


def _check_object(
    schema: JsonSchema, value: dict[str, Any], path: str, defs: dict[str, Any], out: list[str]
) -> None:
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            out.append(f"{_join(path, name)}: required")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            _check(properties[name], item, _join(path, name), defs, out)
        elif extra is False:
            known = ", ".join(sorted(properties)) or "none"
            out.append(f"{_join(path, name)}: not a field of the payload (fields: {known})")
        else:
            _check(extra, item, _join(path, name), defs, out)


def _fits(schema: Any, value: Any, defs: dict[str, Any]) -> bool:
    found: list[str] = []
    _check(schema, value, "", defs, found)
    return not found


def _format_problem(kind: Any, value: str) -> str | None:
    try:
        if kind == "date-time":
            datetime.fromisoformat(value)
        elif kind == "date":
            date.fromisoformat(value)
    except ValueError:
        return f"{value!r} is not an ISO-8601 {kind}"
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__
