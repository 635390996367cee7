"""Is every value valid for OLD also valid for NEW? A structural check over JSON Schemas.

`is_subschema(old, new)` answers it for the subset of JSON Schema that the
compiler emits (`wfc.compiler.schema`) and the usual shapes pydantic emits for
plans built in Python: objects with `properties`, `required` and
`additionalProperties`, arrays with `items`, the scalar types, `enum` and
`const`, `anyOf` (how an optional `T?` is written), `allOf`, numeric and length
bounds, `pattern`, `format`, and `$ref` into `$defs` (recursive types too).

The values in question are the ones wfc stores: a run's input and config and a
stage's output are the JSON dump of a pydantic model, so a record's value
holds every declared field (an optional one as null) and no other, and a
field that is not declared is ignored when a model reads it (except where a
schema says `additionalProperties: false`, as a stage's config model does).

The answer is sound, not complete: `True` means every such value of OLD is
valid for NEW; `False` means that could not be shown. What it cannot decide
(two different patterns, a keyword it does not know in NEW, `oneOf` in NEW) is
`False`, so a caller that reads `False` as "may break" is conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from wfc.compiler.diff.values import (
    KNOWN,
    UNKNOWN,
    Schema,
    Side,
    assertions,
    is_valid,
    multiple,
    strip,
    types_of,
)

_LENGTH = {"string": "Length", "array": "Items", "object": "Properties"}


def is_subschema(
    old: Schema, new: Schema, *, old_root: Schema = None, new_root: Schema = None
) -> bool:
    """Whether every value valid for `old` is valid for `new` (see the module docstring).

    `old_root` / `new_root` are the documents `$ref`s resolve in (the schemas
    themselves when not given).
    """
    return Compat(
        Side(old if old_root is None else old_root), Side(new if new_root is None else new_root)
    ).sub(old, new)


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str) -> tuple[float, bool] | None:
    """The tightest bound of one side: (value, exclusive?)."""
    found: list[tuple[float, bool]] = []
    if isinstance(schema.get(inclusive), int | float) and not isinstance(
        schema.get(inclusive), bool
    ):
        found.append((schema[inclusive], False))
    value = schema.get(exclusive)
    if isinstance(value, int | float) and not isinstance(value, bool):
        found.append((value, True))
    if not found:
        return None
    lower = inclusive == "minimum"
    return max(found) if lower else min(found, key=lambda b: (b[0], not b[1]))


def _as_integer(bound: tuple[float, bool] | None, lower: bool) -> tuple[float, bool] | None:
    """An integer's bound, inclusive: `> 2` is `>= 3`, `<= 2.5` is `<= 2`."""
    if bound is None:
        return None
    value, exclusive = bound
    if lower:
        return (math.floor(value) + 1 if exclusive else math.ceil(value)), False
    return (math.ceil(value) - 1 if exclusive else math.floor(value)), False


def _implies(old: tuple[float, bool] | None, new: tuple[float, bool] | None, lower: bool) -> bool:
    """Does the old bound guarantee the new one?"""
    if new is None:
        return True
    if old is None:
        return False
    (ov, oe), (nv, ne) = old, new
    if not lower:
        ov, nv = -ov, -nv
    if ne:
        return ov > nv or (ov == nv and oe)
    return ov >= nv


@dataclass(slots=True)
class Compat:
    """The check itself, over two documents; `_assumed` holds the pairs of definitions being
    compared, so a recursive type is compatible when nothing but the recursion differs."""

    old: Side
    new: Side
    _assumed: set[tuple[str, str]] = field(default_factory=set)

    def sub(self, old: Schema, new: Schema) -> bool:
        """Every value of `old` (in the old document) is valid for `new` (in the new one)."""
        key = None
        if isinstance(old, dict) and isinstance(new, dict):
            ref_old, ref_new = old.get("$ref"), new.get("$ref")
            if isinstance(ref_old, str) and isinstance(ref_new, str):
                key = (ref_old, ref_new)
                if key in self._assumed:
                    return True
                self._assumed.add(key)
        try:
            resolved_old, _ = self.old.resolve(old)
            resolved_new, _ = self.new.resolve(new)
            if resolved_old is UNKNOWN:
                resolved_old = True
            if resolved_new is UNKNOWN:
                resolved_new = False
            return self._sub(resolved_old, resolved_new)
        finally:
            if key is not None:
                self._assumed.discard(key)

    def _sub(self, old: Schema, new: Schema) -> bool:
        if new is True or (isinstance(new, dict) and not assertions(new)):
            return True
        if old is False:
            return True
        if old is True or new is False or not isinstance(old, dict) or not isinstance(new, dict):
            return False
        if "allOf" in old:
            rest = {k: v for k, v in old.items() if k != "allOf"}
            parts = [rest, *old["allOf"]] if assertions(rest) else list(old["allOf"])
            merged = self._merged(parts)
            if merged is not None:
                return self.sub(merged, new)
            return any(self.sub(part, new) for part in parts)
        for keyword in ("anyOf", "oneOf"):
            if keyword in old:
                rest = {k: v for k, v in old.items() if k != keyword}
                return all(
                    self.sub(branch, new) or (bool(assertions(rest)) and self.sub(rest, new))
                    for branch in old[keyword]
                )
        types = types_of(old)
        if types is not None and len(types) > 1 and "enum" not in old and "const" not in old:
            return all(self.sub({**old, "type": t}, new) for t in sorted(types))
        if "allOf" in new:
            rest = {k: v for k, v in new.items() if k != "allOf"}
            return self.sub(old, rest) and all(self.sub(old, part) for part in new["allOf"])
        if "oneOf" in new:
            return bool(strip(old) == strip(new))
        if "anyOf" in new:
            rest = {k: v for k, v in new.items() if k != "anyOf"}
            return self.sub(old, rest) and any(self.sub(old, b) for b in new["anyOf"])
        values = self._finite_values(old)
        if values is not None:
            return all(is_valid(v, new, self.new) for v in values if is_valid(v, old, self.old))
        if "enum" in new or "const" in new:
            return False
        return self._typed(old, new)

    def _merged(self, parts: list[Schema]) -> dict[str, Any] | None:
        """The parts of an `allOf` as one schema, when no keyword is in two of them with
        different values (values of the merge are values of every part)."""
        merged: dict[str, Any] = {}
        for part in parts:
            resolved, _ = self.old.resolve(part)
            if not isinstance(resolved, dict) or resolved is UNKNOWN or "allOf" in resolved:
                return None
            for key, value in assertions(resolved).items():
                if key in merged and merged[key] != value:
                    return None
                merged[key] = value
        return merged

    def _finite_values(self, old: dict[str, Any]) -> list[Any] | None:
        if "const" in old:
            return [old["const"]]
        if "enum" in old and isinstance(old["enum"], list):
            return list(old["enum"])
        types = types_of(old)
        if types == {"boolean"}:
            return [False, True]
        if types == {"null"}:
            return [None]
        return None

    def _typed(self, old: dict[str, Any], new: dict[str, Any]) -> bool:
        unknown = {k for k in assertions(new) if k not in KNOWN}
        if any(k not in old or strip(old[k]) != strip(new[k]) for k in unknown):
            return False
        old_types, new_types = types_of(old), types_of(new)
        if old_types is None:
            return False  # OLD allows any type; NEW asserts something
        for t in old_types:
            if new_types is not None and t not in new_types:
                if not (t == "integer" and "number" in new_types):
                    return False
            if not self._within(t, old, new):
                return False
        return True

    def _within(self, t: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """The keywords of type `t` in NEW hold for every `t` value of OLD."""
        if t in _LENGTH and not self._lengths(_LENGTH[t], old, new, t):
            return False
        if t == "string":
            return all(
                new.get(k) is None or new.get(k) == old.get(k) for k in ("format", "pattern")
            )
        if t in ("integer", "number"):
            return self._numbers(t, old, new)
        if t == "array":
            if new.get("uniqueItems") and not old.get("uniqueItems"):
                return False
            return "items" not in new or self.sub(old.get("items", True), new["items"])
        if t == "object":
            return self._object(old, new)
        return True

    def _lengths(self, noun: str, old: dict[str, Any], new: dict[str, Any], t: str) -> bool:
        low, high = f"min{noun}", f"max{noun}"
        old_low, old_high = old.get(low, 0), old.get(high)
        if t == "object" and "properties" in old and extras(old) is None:
            old_low = old_high = len(old["properties"])  # a record's dump holds every field
        if new.get(low, 0) > old_low:
            return False
        return new.get(high) is None or (old_high is not None and old_high <= new[high])

    def _numbers(self, t: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
        bounds = []
        for inclusive, exclusive, lower in (
            ("minimum", "exclusiveMinimum", True),
            ("maximum", "exclusiveMaximum", False),
        ):
            o, n = _bound(old, inclusive, exclusive), _bound(new, inclusive, exclusive)
            if t == "integer":
                o = _as_integer(o, lower)
            bounds.append(_implies(o, n, lower))
        step = new.get("multipleOf")
        if step is not None:
            have = old.get("multipleOf")
            ok = (have is not None and multiple(have, step)) or (
                t == "integer" and multiple(1, step)
            )
            bounds.append(ok)
        return all(bounds)

    def _object(self, old: dict[str, Any], new: dict[str, Any]) -> bool:
        old_props: dict[str, Any] = old.get("properties", {})
        new_props: dict[str, Any] = new.get("properties", {})
        others = extras(old)
        present = set(old_props) if others is None else set(old.get("required", []))
        if any(name not in present for name in new.get("required", [])):
            return False
        for name, schema in old_props.items():
            if name in new_props:
                if not self.sub(schema, new_props[name]):
                    return False
            elif not self.extra_ok(schema, new):
                return False
        if others is not None:
            if not all(self.sub(others, schema) for schema in new_props.values()):
                return False
            if not self.extra_ok(others, new):
                return False
        return True

    def extra_ok(self, value: Schema, new: dict[str, Any]) -> bool:
        """A key NEW does not declare, with a value of `value`, is accepted by NEW."""
        policy = new.get("additionalProperties", True)
        if policy is True:
            return True
        if policy is False:
            return value is False
        return self.sub(value, policy)


def extras(schema: dict[str, Any]) -> Schema | None:
    """What keys a value of this object schema holds besides its declared properties: None
    for a record (its dump holds its fields and nothing else), else the schema of their
    values (`{}` when anything goes)."""
    policy = schema.get("additionalProperties")
    if isinstance(policy, dict):
        return policy
    if policy is False or (policy is None and "properties" in schema):
        return None
    return {}
