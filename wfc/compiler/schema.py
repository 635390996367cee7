"""Checked types → JSON Schema (draft 2020-12), as stored in the Plan.

Named records and enums go under `$defs` and are referenced, so a schema reads
like the source. The output is plain data with a fixed key order, so the
plan's fingerprint depends only on the types.
"""

from __future__ import annotations

from typing import Any

from wfc.compiler import model

_PRIMITIVE_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "url": {"type": "string", "format": "uri"},
    "email": {"type": "string", "format": "email"},
    "json": {},
    "blob": {
        "type": "object",
        "properties": {"key": {"type": "string"}},
        "required": ["key"],
        "description": "A reference to a payload in the blob store",
    },
}

_VALUE_KEYWORDS = {
    "ge": "minimum",
    "gt": "exclusiveMinimum",
    "le": "maximum",
    "lt": "exclusiveMaximum",
}


class _SchemaBuilder:
    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}

    def type_schema(self, t: model.Type) -> dict[str, Any]:
        match t:
            case model.Primitive(name=name):
                return dict(_PRIMITIVE_SCHEMAS[name])
            case model.ListOf(item=item):
                return {"type": "array", "items": self.type_schema(item)}
            case model.MapOf(value=value):
                return {"type": "object", "additionalProperties": self.type_schema(value)}
            case model.Optional(inner=inner):
                return {"anyOf": [self.type_schema(inner), {"type": "null"}]}
            case model.EnumType(name=name):
                if name not in self.defs:
                    self.defs[name] = _described(
                        {"type": "string", "enum": list(t.members), "title": name}, t.doc
                    )
                return {"$ref": f"#/$defs/{name}"}
            case model.Record(name=name):
                if name not in self.defs:
                    self.defs[name] = {}  # reserve the name before recursing
                    self.defs[name] = self.record_schema(t)
                return {"$ref": f"#/$defs/{name}"}

    def record_schema(self, record: model.Record) -> dict[str, Any]:
        properties = {f.name: self.field_schema(f) for f in record.fields}
        schema: dict[str, Any] = {"type": "object", "title": record.name, "properties": properties}
        required = [f.name for f in record.fields if f.required]
        if required:
            schema["required"] = required
        return _described(schema, record.doc)

    def field_schema(self, f: model.RecordField) -> dict[str, Any]:
        schema = self.type_schema(f.type)
        target = schema["anyOf"][0] if "anyOf" in schema else schema
        is_array = target.get("type") == "array"
        is_object = target.get("type") == "object"
        for kind, value in f.constraints:
            if kind in _VALUE_KEYWORDS:
                target[_VALUE_KEYWORDS[kind]] = value
            elif kind == "pattern":
                target["pattern"] = value
            else:
                target.update(_length_keyword(kind, int(value), is_array, is_object))
        if f.has_default:
            schema["default"] = f.default
        return _described(schema, f.doc)


def _length_keyword(kind: str, value: int, is_array: bool, is_object: bool) -> dict[str, int]:
    noun = "Items" if is_array else "Properties" if is_object else "Length"
    if kind == "min_len":
        return {f"min{noun}": value}
    if kind == "len_gt":
        return {f"min{noun}": value + 1}
    if kind == "max_len":
        return {f"max{noun}": value}
    return {f"max{noun}": value - 1}


def _described(schema: dict[str, Any], doc: str | None) -> dict[str, Any]:
    if doc:
        schema["description"] = doc
    return schema


def record_json_schema(record: model.Record) -> dict[str, Any]:
    """A self-contained object schema for a record, with `$defs` for the named types it uses."""
    builder = _SchemaBuilder()
    schema = builder.record_schema(record)
    if builder.defs:
        schema["$defs"] = dict(sorted(builder.defs.items()))
    return schema


def type_json_schema(t: model.Type) -> dict[str, Any]:
    """A self-contained schema for a value of any type (one item of a mapped stage),
    with `$defs` for the named types it uses."""
    builder = _SchemaBuilder()
    schema = builder.type_schema(t)
    if builder.defs:
        schema["$defs"] = dict(sorted(builder.defs.items()))
    return schema


def input_json_schema(stage_input: model.Record | model.RootInput) -> dict[str, Any]:
    """The schema of a stage's input: a record's, or one item's for a `RootInput`."""
    if isinstance(stage_input, model.RootInput):
        return type_json_schema(stage_input.item)
    return record_json_schema(stage_input)
