"""JSON Schema basics shared by the diff: references, annotations, and one value's validity.

`Side` resolves `$ref`s in one schema document; `is_valid(value, schema)`
checks a single JSON value (the members of an enum, in practice) against the
subset of JSON Schema that `wfc.compiler.diff.schemas` understands, and is
conservative: a keyword it does not know makes the answer False.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from wfc.formats import check_email, check_url

Schema = Any  # a JSON Schema: a dict, or True / False

ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$schema",
        "$id",
        "$defs",
        "definitions",
    }
)
"""Keywords that say nothing about which values are valid."""

KNOWN = frozenset(
    {
        "type",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
    }
)
"""Assertions this module understands; any other one in NEW must be in OLD unchanged."""

UNKNOWN: Schema = {"$comment": "wfc: a reference that does not resolve"}
"""What an unresolvable `$ref` reads as: any value in OLD, no value in NEW."""

TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")


def strip(schema: Schema) -> Schema:
    """The schema without annotations (nested ones included), for comparing assertions."""
    if isinstance(schema, list):
        return [strip(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key in ("properties",) and isinstance(value, dict):
            out[key] = {name: strip(sub) for name, sub in value.items()}
        elif key in ("enum", "const", "required"):
            out[key] = value
        else:
            out[key] = strip(value)
    return out


@dataclass(slots=True)
class Side:
    """One schema document: resolves `#/$defs/...` (and `#/definitions/...`) references."""

    root: Schema

    def target(self, ref: str) -> Schema:
        """The schema a local `$ref` points at; None when it does not resolve."""
        if not ref.startswith("#"):
            return None
        node = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def resolve(self, schema: Schema) -> tuple[Schema, str | None]:
        """`schema` with `$ref` followed (siblings kept as an `allOf`), and the name of the
        last definition followed, if any. A reference that does not resolve (or only to
        itself) is `UNKNOWN`: nothing is known about its values."""
        name = None
        seen: set[str] = set()
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            target = self.target(ref)
            if ref in seen or target is None:
                return UNKNOWN, name
            seen.add(ref)
            name = ref.rsplit("/", 1)[-1]
            siblings = {k: v for k, v in schema.items() if k != "$ref" and k not in ANNOTATIONS}
            schema = {"allOf": [target, siblings]} if siblings else target
        return schema, name


def assertions(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ANNOTATIONS}


def types_of(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types the schema allows, or None when it does not say."""
    declared = schema.get("type")
    if declared is None:
        return None
    listed = [declared] if isinstance(declared, str) else list(declared)
    return {t for t in listed if t in TYPES}


def is_valid(value: Any, schema: Schema, side: Side) -> bool:
    """Is this JSON value valid for `schema` (whose `$ref`s resolve in `side`)?"""
    schema, _ = side.resolve(schema)
    if schema is True or schema is UNKNOWN:
        return schema is True
    if schema is False or not isinstance(schema, dict):
        return False
    checks = assertions(schema)
    if any(k not in KNOWN for k in checks):
        return False
    if "enum" in checks and not any(same(value, v) for v in checks["enum"]):
        return False
    if "const" in checks and not same(value, checks["const"]):
        return False
    if "allOf" in checks and not all(is_valid(value, s, side) for s in checks["allOf"]):
        return False
    if "anyOf" in checks and not any(is_valid(value, s, side) for s in checks["anyOf"]):
        return False
    if "oneOf" in checks and sum(is_valid(value, s, side) for s in checks["oneOf"]) != 1:
        return False
    types = types_of(checks)
    if types is not None and not any(_is_type(value, t) for t in types):
        return False
    return _value_keywords(value, checks, side)


def _value_keywords(value: Any, checks: dict[str, Any], side: Side) -> bool:
    if isinstance(value, str):
        return _valid_string(value, checks)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _valid_number(value, checks)
    if isinstance(value, list):
        if not checks.get("minItems", 0) <= len(value) <= checks.get("maxItems", math.inf):
            return False
        if checks.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            return False
        return "items" not in checks or all(is_valid(v, checks["items"], side) for v in value)
    if isinstance(value, dict):
        props: dict[str, Any] = checks.get("properties", {})
        if any(name not in value for name in checks.get("required", [])):
            return False
        count = len(value)
        if not checks.get("minProperties", 0) <= count <= checks.get("maxProperties", math.inf):
            return False
        policy = checks.get("additionalProperties", True)
        return all(is_valid(item, props.get(key, policy), side) for key, item in value.items())
    return True


def _valid_string(value: str, checks: dict[str, Any]) -> bool:
    if not checks.get("minLength", 0) <= len(value) <= checks.get("maxLength", math.inf):
        return False
    pattern = checks.get("pattern")
    if pattern is not None:
        try:
            if re.search(pattern, value) is None:
                return False
        except re.error:
            return False
    form = checks.get("format")
    return form is None or _valid_format(value, form)


def _valid_number(value: float, checks: dict[str, Any]) -> bool:
    low, high = checks.get("minimum"), checks.get("maximum")
    above, below = checks.get("exclusiveMinimum"), checks.get("exclusiveMaximum")
    if (low is not None and value < low) or (high is not None and value > high):
        return False
    if (above is not None and value <= above) or (below is not None and value >= below):
        return False
    step = checks.get("multipleOf")
    return step is None or multiple(value, step)


def _valid_format(value: str, form: str) -> bool:
    checks = {
        "date-time": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
        "date": date.fromisoformat,
        "uri": check_url,
        "email": check_email,
    }
    check = checks.get(form)
    if check is None:
        return False
    try:
        check(value)
    except ValueError:
        return False
    return True


def multiple(value: float, step: float) -> bool:
    """Is `value` a whole multiple of `step`?"""
    if step <= 0:
        return False
    ratio = value / step
    return math.isclose(ratio, round(ratio), rel_tol=0, abs_tol=1e-9)


def _is_type(value: Any, t: str) -> bool:
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    if t == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)
