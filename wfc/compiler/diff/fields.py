"""Where two schemas differ, field by field, and which way each difference goes.

`field_deltas(old, new)` walks two schemas side by side: into the fields of
records, the items of lists, the values of maps and the inside of optionals,
as long as both sides have the same shape there, and reports each place that
differs as a `FieldDelta` with two answers from `is_subschema`: `forward`
(every old value there is valid for the new schema: what stored data needs)
and `backward` (every new value is valid for the old schema: what a reader
written for the old plan needs). A difference in annotations only
(descriptions, titles) is no delta; a changed default is one of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from wfc.compiler.diff.schemas import Compat, extras
from wfc.compiler.diff.values import ANNOTATIONS, Schema, Side, strip

DeltaKind = Literal["added", "removed", "changed", "default"]

_NO_DEFAULT = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldDelta:
    """One place where two schemas differ.

    `path` names the place from the top: field names, `[]` for an item of a
    list and `{}` for a value of a map; empty for the schema as a whole.
    `record` is the named type that holds the field (the new side's name,
    else the old side's), None for the top-level record.
    """

    path: tuple[str, ...]
    kind: DeltaKind
    old: Schema = None
    new: Schema = None
    forward: bool = True
    backward: bool = True
    required: bool = False  # for `added`: the new field must be given
    record: str | None = None
    old_root: Schema = None
    new_root: Schema = None

    @property
    def dotted(self) -> str:
        """The path as text: `pages[].title`, or `(the whole value)` for the top."""
        text = ""
        for part in self.path:
            text += part if part in ("[]", "{}") or not text else f".{part}"
        return text or "(the whole value)"

    @property
    def field(self) -> str | None:
        """The last field name of the path (what a location points at), if any."""
        names = [part for part in self.path if part not in ("[]", "{}")]
        return names[-1] if names else None

    @property
    def direction(self) -> Literal["same", "widened", "narrowed", "changed"]:
        """`widened`: NEW accepts every old value and more; `narrowed`: the reverse;
        `changed`: neither holds; `same`: both hold."""
        if self.forward and self.backward:
            return "same"
        if self.forward:
            return "widened"
        return "narrowed" if self.backward else "changed"

    def describe(self) -> str:
        """What changed, in a few words, for a message."""
        if self.kind == "added":
            what = "required" if self.required else "optional"
            shown = describe(self.new, self.new_root)
            default = _default(self.new)
            tail = "" if default is _NO_DEFAULT else f" = {_json(default)}"
            return f"new {what} field `{self.dotted}: {shown}{tail}`"
        if self.kind == "removed":
            return f"field `{self.dotted}` ({describe(self.old, self.old_root)}) removed"
        if self.kind == "default":
            before, after = _default(self.old), _default(self.new)
            old_text = "none" if before is _NO_DEFAULT else _json(before)
            new_text = "none" if after is _NO_DEFAULT else _json(after)
            return f"default of `{self.dotted}`: {old_text} → {new_text}"
        before = describe(self.old, self.old_root)
        after = describe(self.new, self.new_root)
        if before == after:  # the same name: show what it stands for
            before = describe(Side(self.old_root).resolve(self.old)[0], self.old_root)
            after = describe(Side(self.new_root).resolve(self.new)[0], self.new_root)
        if before == after:
            after += " (with other constraints)"
        return f"`{self.dotted}`: {before} → {after}"


def field_deltas(old: Schema, new: Schema, *, closed: bool = False) -> list[FieldDelta]:
    """The differences between two top-level schemas (each its own `$ref` document).

    `closed`: a value of NEW may hold no undeclared field at its top level,
    whatever the schema says (a stage's config model forbids them).
    """
    if closed and isinstance(new, dict) and "additionalProperties" not in new:
        new = {**new, "additionalProperties": False}
    walker = _Walker(old, new)
    walker.walk(old, new, (), None)
    return walker.found


class _Walker:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root, self.new_root = old_root, new_root
        self.fwd = Compat(Side(old_root), Side(new_root))
        self.back = Compat(Side(new_root), Side(old_root))
        self.found: list[FieldDelta] = []
        self.visiting: set[tuple[str | None, str | None]] = set()

    def delta(self, path: tuple[str, ...], kind: DeltaKind, **kw: Any) -> FieldDelta:
        found = FieldDelta(
            path=path, kind=kind, old_root=self.old_root, new_root=self.new_root, **kw
        )
        self.found.append(found)
        return found

    def walk(self, old: Schema, new: Schema, path: tuple[str, ...], record: str | None) -> None:
        o, o_name = self.fwd.old.resolve(old)
        n, n_name = self.fwd.new.resolve(new)
        key = (o_name, n_name)
        if (o_name or n_name) and key in self.visiting:
            return  # a recursive type: its differences are reported where it began
        before = len(self.found)
        self.visiting.add(key)
        try:
            shape_o, shape_n = _shape(o), _shape(n)
            if shape_o == shape_n == "record" and _shell(o, "properties") == _shell(
                n, "properties"
            ):
                self._record(o, n, path, n_name or o_name or record)
            elif shape_o == shape_n == "optional" and not _nullable(o, n):
                self.walk(_inner(o), _inner(n), path, record)
            elif shape_o == shape_n == "list" and _shell(o, "items") == _shell(n, "items"):
                self.walk(o.get("items", True), n.get("items", True), (*path, "[]"), record)
            elif shape_o == shape_n == "map" and _shell(o, "additionalProperties") == _shell(
                n, "additionalProperties"
            ):
                self.walk(
                    o["additionalProperties"], n["additionalProperties"], (*path, "{}"), record
                )
        finally:
            self.visiting.discard(key)
        forward, backward = self.fwd.sub(old, new), self.back.sub(new, old)
        inner = self.found[before:]
        missing_fwd = not forward and all(d.forward for d in inner)
        missing_back = not backward and all(d.backward for d in inner)
        if missing_fwd or missing_back:
            self.found.insert(
                before,
                FieldDelta(
                    path=path,
                    kind="changed",
                    old=old,
                    new=new,
                    forward=forward,
                    backward=backward,
                    record=record,
                    old_root=self.old_root,
                    new_root=self.new_root,
                ),
            )

    def _record(
        self, o: dict[str, Any], n: dict[str, Any], path: tuple[str, ...], record: str | None
    ) -> None:
        old_props: dict[str, Any] = o.get("properties", {})
        new_props: dict[str, Any] = n.get("properties", {})
        old_required, new_required = set(o.get("required", [])), set(n.get("required", []))
        holder = None if not path else record
        for name, schema in new_props.items():
            here = (*path, name)
            if name not in old_props:
                self.delta(
                    here,
                    "added",
                    new=schema,
                    forward=name not in new_required,
                    backward=self.back.extra_ok(schema, o),
                    required=name in new_required,
                    record=holder,
                )
                continue
            self.walk(old_props[name], schema, here, holder)
            if _default(old_props[name]) != _default(schema):
                self.delta(here, "default", old=old_props[name], new=schema, record=holder)
        for name, schema in old_props.items():
            if name not in new_props:
                self.delta(
                    (*path, name),
                    "removed",
                    old=schema,
                    forward=self.fwd.extra_ok(schema, n),
                    backward=name not in old_required,
                    record=holder,
                )


def _shape(schema: Schema) -> str:
    if not isinstance(schema, dict):
        return "other"
    branches = schema.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        if not {k for k in schema if k not in ANNOTATIONS} - {"anyOf"}:
            return "optional"
    kind = schema.get("type")
    if kind == "array":
        return "list"
    if kind == "object" or (kind is None and "properties" in schema):
        if extras(schema) is None:
            return "record"
        if "properties" not in schema and isinstance(schema.get("additionalProperties"), dict):
            return "map"
    return "other"


def _nullable(*optionals: dict[str, Any]) -> bool:
    """Whether the inside of either optional may be null itself (`T??` from a plan built
    by hand): then the null outside matters inside, and the two are compared whole."""
    return any(_shape(_inner(o)) == "optional" or _inner(o) == {} for o in optionals)


def _inner(schema: dict[str, Any]) -> Schema:
    return next(b for b in schema["anyOf"] if b != {"type": "null"})


def _shell(schema: dict[str, Any], without: str) -> Any:
    """The schema's own assertions, without the part the walk goes into, nor `required`
    for a record (each field says whether it is required)."""
    kept = {k: v for k, v in strip(schema).items() if k != without}
    if without == "properties":
        kept.pop("required", None)
        if isinstance(kept.get("additionalProperties"), bool):
            del kept["additionalProperties"]
    return kept


def _default(schema: Schema) -> Any:
    if isinstance(schema, dict) and "default" in schema:
        return schema["default"]
    return _NO_DEFAULT


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


_FORMATS = {"date-time": "datetime", "date": "date", "uri": "url", "email": "email"}
_SCALARS = {"integer": "int", "number": "float", "boolean": "bool", "null": "null"}


def describe(schema: Schema, root: Schema = None, *, depth: int = 0) -> str:
    """A schema as a type in the language, for messages: `int (>= 0)`, `list[Chunk]`,
    `str?`, `Sentiment`, `map[float]`, `json`."""
    if schema is True or schema is None:
        return "json"
    if schema is False:
        return "nothing"
    if not isinstance(schema, dict):
        return "?"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    if depth > 3:
        return "…"
    if _shape(schema) == "optional":
        return describe(_inner(schema), root, depth=depth + 1) + "?"
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            return " | ".join(describe(b, root, depth=depth + 1) for b in schema[keyword])
    if "enum" in schema:
        base = schema.get("title") or "enum"
        return f"{base} ({', '.join(_json(v) for v in schema['enum'])})"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(describe({**schema, "type": k}, root, depth=depth) for k in kind)
    text = _base(schema, kind, root, depth)
    bounds = _constraints(schema)
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _base(schema: dict[str, Any], kind: Any, root: Schema, depth: int) -> str:
    if kind == "string":
        return _FORMATS.get(schema.get("format", ""), "str")
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        return f"list[{describe(schema.get('items', True), root, depth=depth + 1)}]"
    if kind == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and "properties" not in schema:
            return f"map[{describe(extra, root, depth=depth + 1)}]"
        if schema.get("title"):
            return str(schema["title"])
        return "{" + ", ".join(schema.get("properties", {})) + "}"
    return "json"


def _constraints(schema: dict[str, Any]) -> list[str]:
    shown = []
    for keyword, symbol in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if keyword in schema:
            shown.append(f"{symbol} {schema[keyword]}")
    for noun in ("Length", "Items", "Properties"):
        if f"min{noun}" in schema:
            shown.append(f"len >= {schema[f'min{noun}']}")
        if f"max{noun}" in schema:
            shown.append(f"len <= {schema[f'max{noun}']}")
    if "pattern" in schema:
        shown.append(f"pattern {_json(schema['pattern'])}")
    return shown
