"""The kinds of values a `when` condition works with, and which of them compare.

A condition sees the declared types (`model.Type`) plus `null`, the type of
the literal `null` and of anything missing at run time. What an operator
accepts depends on the *kind* of a type (`number`, `text`, `bool`, `enum`,
`list`, `map`, `record`, `blob`, `null`, or `any` for `json`), with `T?` of
the kind of `T`: the runtime gives every operator an answer for null.
"""

from __future__ import annotations

from typing import assert_never

from wfc.compiler import model

NULL = model.Primitive(name="null")
"""The type of `null`, which only conditions have: it equals anything optional."""
ANY = model.Primitive(name="json")
BOOL = model.Primitive(name="bool")
INT = model.Primitive(name="int")

TEXT_TYPES = ("str", "url", "email", "date", "datetime")
_NUMBER = ("int", "float")


def kind(t: model.Type) -> str:
    """What a condition can do with a value of `t`: `number`, `text`, `bool`, `enum`, …"""
    match t:
        case model.Optional(inner=inner):
            return kind(inner)
        case model.Primitive(name=name):
            if name in _NUMBER:
                return "number"
            if name in TEXT_TYPES:
                return "text"
            return {"json": "any", "null": "null"}.get(name, name)
        case model.EnumType():
            return "enum"
        case model.ListOf():
            return "list"
        case model.MapOf():
            return "map"
        case model.Record():
            return "record"
    assert_never(t)


def without_optional(t: model.Type) -> model.Type:
    return t.inner if isinstance(t, model.Optional) else t


def equatable(left: model.Type, right: model.Type) -> bool:
    """Whether `==` between the two can ever be true (null and `json` match anything)."""
    a, b = without_optional(left), without_optional(right)
    ka, kb = kind(a), kind(b)
    if "any" in (ka, kb) or "null" in (ka, kb):
        return True
    if ka != kb:
        return False
    match a, b:
        case model.EnumType(name=x), model.EnumType(name=y):
            return x == y
        case model.Record(name=x), model.Record(name=y):
            return x == y
        case model.ListOf(item=x), model.ListOf(item=y):
            return equatable(x, y)
        case model.MapOf(value=x), model.MapOf(value=y):
            return equatable(x, y)
    return True


def literal_type(value: object) -> model.Type:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return model.Primitive(name="float")
    return model.Primitive(name="str")


def truth_help(t: model.Type) -> str:
    k = kind(t)
    if k in ("list", "map", "text"):
        return "test its length, e.g. `len(x) > 0`"
    if k == "number":
        return "compare it, e.g. `x > 0`"
    if k == "enum":
        return "compare it with a member, e.g. `x == Enum.member`"
    return "compare one of its fields, e.g. `x.field == …`"
