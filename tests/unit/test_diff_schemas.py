"""The schema check under `wfc diff`: is every value valid for OLD also valid for NEW?

Hand cases pin each keyword both ways. Then properties over random types of
the language, lowered by the compiler's own schema builder: a type fits
itself and every widening `widen` makes, the field-by-field walk agrees with
the whole-schema answer, and the answer is sound against pydantic itself:
whenever the check says yes, a value the old model dumps is accepted by the
new model.
"""

from __future__ import annotations

import itertools
import string
from datetime import date, datetime
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, create_model

from wfc.compiler import model
from wfc.compiler.diff import is_subschema
from wfc.compiler.diff.fields import describe, field_deltas
from wfc.compiler.diff.values import Side, is_valid
from wfc.compiler.schema import record_json_schema, type_json_schema
from wfc.formats import check_email, check_url

INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}
NULL = {"type": "null"}


def opt(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, NULL]}


def rec(props: dict[str, Any], required: list[str] | None = None, **more: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, **more}
    if required:
        schema["required"] = required
    return schema


CASES: list[tuple[str, Any, Any, bool]] = [
    ("same", INT, INT, True),
    ("int to float", INT, NUM, True),
    ("float to int", NUM, INT, False),
    ("str to json", STR, {}, True),
    ("json to str", {}, STR, False),
    ("annotations do not count", {**STR, "description": "x"}, {**STR, "title": "y"}, True),
    ("T to T?", INT, opt(INT), True),
    ("T? to T", opt(INT), INT, False),
    ("int? to float?", opt(INT), opt(NUM), True),
    ("null to T?", NULL, opt(STR), True),
    ("enum gains a member", {"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}, True),
    ("enum loses a member", {"enum": ["a", "b"]}, {"enum": ["a"]}, False),
    ("enum to str", {"type": "string", "enum": ["a"]}, STR, True),
    ("str to enum", STR, {"type": "string", "enum": ["a"]}, False),
    ("bool to enum of both", {"type": "boolean"}, {"enum": [True, False]}, True),
    ("minimum loosened", {**INT, "minimum": 1}, {**INT, "minimum": 0}, True),
    ("minimum tightened", {**INT, "minimum": 0}, {**INT, "minimum": 1}, False),
    ("minimum added", INT, {**INT, "minimum": 0}, False),
    ("minimum dropped", {**INT, "minimum": 0}, INT, True),
    ("int > 0 is int >= 1", {**INT, "exclusiveMinimum": 0}, {**INT, "minimum": 1}, True),
    ("float > 0 is not float >= 1", {**NUM, "exclusiveMinimum": 0}, {**NUM, "minimum": 1}, False),
    ("float >= 1 is float > 0", {**NUM, "minimum": 1}, {**NUM, "exclusiveMinimum": 0}, True),
    (
        "float > 0 vs float > 0",
        {**NUM, "exclusiveMinimum": 0},
        {**NUM, "exclusiveMinimum": 0},
        True,
    ),
    ("float >= 0 vs float > 0", {**NUM, "minimum": 0}, {**NUM, "exclusiveMinimum": 0}, False),
    ("maximum loosened", {**NUM, "maximum": 1}, {**NUM, "maximum": 2}, True),
    ("maximum tightened", {**NUM, "maximum": 2}, {**NUM, "maximum": 1}, False),
    ("int < 3 is int <= 2", {**INT, "exclusiveMaximum": 3}, {**INT, "maximum": 2}, True),
    ("multipleOf kept", {**INT, "multipleOf": 4}, {**INT, "multipleOf": 2}, True),
    ("multipleOf added", INT, {**INT, "multipleOf": 2}, False),
    ("minLength loosened", {**STR, "minLength": 2}, {**STR, "minLength": 1}, True),
    ("minLength added", STR, {**STR, "minLength": 1}, False),
    ("maxLength tightened", {**STR, "maxLength": 5}, {**STR, "maxLength": 4}, False),
    ("pattern kept", {**STR, "pattern": "^a"}, {**STR, "pattern": "^a"}, True),
    ("pattern dropped", {**STR, "pattern": "^a"}, STR, True),
    ("pattern changed", {**STR, "pattern": "^a"}, {**STR, "pattern": "^ab?"}, False),
    ("format dropped (url to str)", {**STR, "format": "uri"}, STR, True),
    ("format added (str to url)", STR, {**STR, "format": "uri"}, False),
    ("format changed", {**STR, "format": "date"}, {**STR, "format": "date-time"}, False),
    (
        "enum of urls to url",
        {"type": "string", "enum": ["https://a.b"]},
        {**STR, "format": "uri"},
        True,
    ),
    (
        "enum of non-urls to url",
        {"type": "string", "enum": ["nope"]},
        {**STR, "format": "uri"},
        False,
    ),
    ("list items widened", {"type": "array", "items": INT}, {"type": "array", "items": NUM}, True),
    (
        "list items narrowed",
        {"type": "array", "items": NUM},
        {"type": "array", "items": INT},
        False,
    ),
    (
        "minItems added",
        {"type": "array", "items": INT},
        {"type": "array", "items": INT, "minItems": 1},
        False,
    ),
    ("uniqueItems added", {"type": "array"}, {"type": "array", "uniqueItems": True}, False),
    (
        "map widened",
        {"type": "object", "additionalProperties": INT},
        {"type": "object", "additionalProperties": NUM},
        True,
    ),
    (
        "map narrowed",
        {"type": "object", "additionalProperties": NUM},
        {"type": "object", "additionalProperties": INT},
        False,
    ),
    (
        "record to map of its values",
        rec({"a": INT}, ["a"]),
        {"type": "object", "additionalProperties": NUM},
        True,
    ),
    (
        "map to record with a required field",
        {"type": "object", "additionalProperties": INT},
        rec({"a": INT}, ["a"]),
        False,
    ),
    (
        "map to record of optional fields",
        {"type": "object", "additionalProperties": INT},
        rec({"a": NUM}),
        True,
    ),
    (
        "map to record of other fields",
        {"type": "object", "additionalProperties": INT},
        rec({"a": STR}),
        False,
    ),
    (
        "record: optional field added",
        rec({"a": INT}, ["a"]),
        rec({"a": INT, "b": opt(INT)}, ["a"]),
        True,
    ),
    (
        "record: required field added",
        rec({"a": INT}, ["a"]),
        rec({"a": INT, "b": INT}, ["a", "b"]),
        False,
    ),
    (
        "record: field removed (ignored)",
        rec({"a": INT, "b": INT}, ["a", "b"]),
        rec({"a": INT}, ["a"]),
        True,
    ),
    (
        "record: field removed, closed",
        rec({"a": INT, "b": INT}, ["a", "b"]),
        rec({"a": INT}, ["a"], additionalProperties=False),
        False,
    ),
    (
        "record: defaulted field made required",
        rec({"a": {**INT, "default": 1}}),
        rec({"a": INT}, ["a"]),
        True,
    ),
    ("record: optional field made required", rec({"a": opt(INT)}), rec({"a": INT}, ["a"]), False),
    ("record: field widened", rec({"a": INT}, ["a"]), rec({"a": NUM}, ["a"]), True),
    ("record: field narrowed", rec({"a": NUM}, ["a"]), rec({"a": INT}, ["a"]), False),
    ("unknown keyword in NEW", STR, {**STR, "contentEncoding": "base64"}, False),
    (
        "unknown keyword in both",
        {**STR, "contentEncoding": "base64"},
        {**STR, "contentEncoding": "base64"},
        True,
    ),
    ("oneOf in NEW", INT, {"oneOf": [INT, STR]}, False),
    ("allOf in OLD", {"allOf": [INT, {"minimum": 0}]}, {**NUM, "minimum": 0}, True),
    ("allOf in NEW", {**INT, "minimum": 0}, {"allOf": [NUM, {"minimum": 0}]}, True),
    ("type list split", {"type": ["integer", "null"]}, opt(NUM), True),
    ("nothing fits false", False, INT, True),
    ("true fits nothing but true", True, INT, False),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_is_subschema(old: Any, new: Any, expected: bool) -> None:
    assert is_subschema(old, new) is expected


def test_references_resolve_in_their_own_document() -> None:
    old = {"$ref": "#/$defs/Label", "$defs": {"Label": {"type": "string", "enum": ["a", "b"]}}}
    new = {"$ref": "#/$defs/Kind", "$defs": {"Kind": {"type": "string", "enum": ["a", "b", "c"]}}}
    assert is_subschema(old, new)
    assert not is_subschema(new, old)


def test_a_reference_that_does_not_resolve_is_unknown() -> None:
    broken = {"$ref": "#/$defs/Missing"}
    assert not is_subschema(broken, INT)  # OLD may hold anything
    assert not is_subschema(INT, broken)  # nothing is known to fit NEW
    assert is_subschema(broken, {})


def test_recursive_types_compare_by_their_structure() -> None:
    def tree(leaf: dict[str, Any]) -> dict[str, Any]:
        node = rec(
            {"value": leaf, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            ["value", "children"],
        )
        return {"$ref": "#/$defs/Node", "$defs": {"Node": node}}

    assert is_subschema(tree(INT), tree(NUM))
    assert not is_subschema(tree(NUM), tree(INT))
    assert is_subschema(tree(INT), tree(INT))


def test_values_are_checked_conservatively() -> None:
    side = Side({})
    assert is_valid("2024-01-02", {**STR, "format": "date"}, side)
    assert not is_valid("2024-13-02", {**STR, "format": "date"}, side)
    assert not is_valid("x", {**STR, "format": "ipv4"}, side)  # a format it does not know
    assert is_valid(3.0, INT, side)
    assert not is_valid(True, INT, side)
    assert is_valid({"a": 1}, rec({"a": INT}, ["a"]), side)
    assert not is_valid({}, rec({"a": INT}, ["a"]), side)
    assert not is_valid("x", {"type": "string", "contentEncoding": "base64"}, side)


def test_describe_reads_like_the_language() -> None:
    assert describe({**INT, "minimum": 0}) == "int (>= 0)"
    assert describe(opt({"type": "array", "items": STR})) == "list[str]?"
    assert describe({"type": "object", "additionalProperties": NUM}) == "map[float]"
    assert describe({"$ref": "#/$defs/Chunk"}) == "Chunk"
    assert describe({}) == "json"
    assert describe({**STR, "format": "uri"}) == "url"


# -- properties over the language's own types -----------------------------------

PRIMITIVES = ["str", "int", "float", "bool", "json", "date", "datetime", "url", "email"]
MEMBERS = ["a", "b", "c", "d"]
NAMES = ["f1", "f2", "f3", "f4"]


def _types(depth: int) -> st.SearchStrategy[model.Type]:
    leaf = st.one_of(
        st.sampled_from(PRIMITIVES).map(lambda n: model.Primitive(name=n)),
        st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=3, unique=True).map(
            lambda ms: model.EnumType(name="E", members=tuple(sorted(ms)))
        ),
    )
    if depth == 0:
        return leaf
    inner = _types(depth - 1)
    return st.one_of(
        leaf,
        inner.map(lambda t: model.ListOf(item=t)),
        inner.map(lambda t: model.MapOf(value=t)),
        inner.filter(lambda t: not isinstance(t, model.Optional)).map(
            lambda t: model.Optional(inner=t)
        ),
        _records(inner),
    )


def _constraints(t: model.Type) -> st.SearchStrategy[tuple[tuple[str, float | int], ...]]:
    base = t.inner if isinstance(t, model.Optional) else t
    if isinstance(base, model.Primitive) and base.name in ("int", "float"):
        kinds = ["ge", "gt", "le", "lt"]
        bound = st.integers(-5, 5)
    elif (isinstance(base, model.Primitive) and base.name == "str") or isinstance(
        base, model.ListOf
    ):
        kinds = ["min_len", "max_len"]
        bound = st.integers(0, 3)
    else:
        return st.just(())
    return st.lists(st.tuples(st.sampled_from(kinds), bound), max_size=1).map(tuple)


@st.composite
def _field(draw: st.DrawFn, name: str, inner: st.SearchStrategy[model.Type]) -> model.RecordField:
    t = draw(inner)
    return model.RecordField(name=name, type=t, constraints=draw(_constraints(t)))


def _records(inner: st.SearchStrategy[model.Type]) -> st.SearchStrategy[model.Type]:
    @st.composite
    def build(draw: st.DrawFn) -> model.Record:
        names = draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
        return model.Record(name="R", fields=tuple(draw(_field(n, inner)) for n in names))

    return build()


def rename(t: model.Type, counter: list[int]) -> model.Type:
    """Give every record and enum its own name, as the compiler's names are unique."""
    counter[0] += 1
    match t:
        case model.ListOf(item=item):
            return model.ListOf(item=rename(item, counter))
        case model.MapOf(value=value):
            return model.MapOf(value=rename(value, counter))
        case model.Optional(inner=inner):
            return model.Optional(inner=rename(inner, counter))
        case model.EnumType():
            return model.EnumType(name=f"E{counter[0]}", members=t.members)
        case model.Record():
            name = f"R{counter[0]}"  # before the fields take the next numbers
            fields = tuple(
                model.RecordField(
                    name=f.name, type=rename(f.type, counter), constraints=f.constraints
                )
                for f in t.fields
            )
            return model.Record(name=name, fields=fields)
    return t


types = _types(2).map(lambda t: rename(t, [0]))
FRESH = itertools.count(1)  # names for types `mutate` makes up, unlike any of the old type's


@st.composite
def widen(draw: st.DrawFn, t: model.Type) -> model.Type:
    """A type that accepts every value of `t` (and maybe more)."""
    if isinstance(t, model.Primitive) and t.name != "json" and draw(st.booleans()):
        name = {"int": "float", "url": "str", "email": "str"}.get(t.name)
        return model.Primitive(name=name or "json") if draw(st.booleans()) else t
    match t:
        case model.ListOf(item=item):
            return model.ListOf(item=draw(widen(item)))
        case model.MapOf(value=value):
            return model.MapOf(value=draw(widen(value)))
        case model.Optional(inner=inner):
            inside = draw(widen(inner))
            return inside if isinstance(inside, model.Optional) else model.Optional(inner=inside)
        case model.EnumType(members=members) if draw(st.booleans()):
            more = draw(st.lists(st.sampled_from(MEMBERS), unique=True))
            return model.EnumType(name=t.name, members=tuple(sorted({*members, *more})))
        case model.Record(fields=fields):
            kept = list(fields)
            drop = draw(st.integers(-1, len(kept) - 1))  # a field removed is ignored
            if drop >= 0:
                kept.pop(drop)
            out = []
            for f in kept:
                ft = draw(widen(f.type))
                constraints = f.constraints if draw(st.booleans()) else ()
                if isinstance(ft, model.Primitive) and ft.name == "json" and constraints:
                    ft = f.type  # constraints on json would be meaningless
                out.append(model.RecordField(name=f.name, type=ft, constraints=constraints))
            if "f9" not in {f.name for f in out} and draw(st.booleans()):
                out.append(
                    model.RecordField(
                        name="f9", type=model.Optional(inner=model.Primitive(name="int"))
                    )
                )
            return model.Record(name=t.name, fields=tuple(out))
    if not isinstance(t, model.Optional) and draw(st.booleans()):
        return model.Optional(inner=t)
    return t


@st.composite
def mutate(draw: st.DrawFn, t: model.Type) -> model.Type:
    """Any nearby type: widened, narrowed, or replaced somewhere inside."""
    if draw(st.integers(0, 5)) == 0:
        return rename(draw(_types(1)), [next(FRESH) * 100])
    match t:
        case model.ListOf(item=item):
            return model.ListOf(item=draw(mutate(item)))
        case model.MapOf(value=value):
            return model.MapOf(value=draw(mutate(value)))
        case model.Optional(inner=inner):
            return draw(st.sampled_from([inner, model.Optional(inner=draw(mutate(inner)))]))
        case model.Record(fields=fields):
            out = []
            for f in fields:
                ft = draw(mutate(f.type))
                out.append(
                    model.RecordField(name=f.name, type=ft, constraints=draw(_constraints(ft)))
                )
            if draw(st.booleans()):
                out.append(model.RecordField(name="f8", type=model.Primitive(name="int")))
            return model.Record(name=t.name, fields=tuple(out))
        case model.EnumType(members=members):
            fewer = draw(st.lists(st.sampled_from(members), min_size=1, unique=True))
            return model.EnumType(name=t.name, members=tuple(sorted(fewer)))
        case model.Primitive(name=name):
            narrower = {
                "float": "int",
                "str": draw(st.sampled_from(["url", "email", "date"])),
                "json": "str",
            }
            return model.Primitive(name=narrower.get(name, name))
    return t


def schema_of(t: model.Type) -> dict[str, Any]:
    return type_json_schema(t)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(types)
def test_a_type_fits_itself(t: model.Type) -> None:
    assert is_subschema(schema_of(t), schema_of(t))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_type_fits_every_widening(data: st.DataObject) -> None:
    t = data.draw(types)
    wider = data.draw(widen(t))
    assert is_subschema(schema_of(t), schema_of(wider)), (model.describe(t), model.describe(wider))


# -- soundness against pydantic -------------------------------------------------

_EXACT = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "json": Any,
    "date": date,
    "datetime": datetime,
}


def py_type(t: model.Type, constraints: tuple[tuple[str, float | int | str], ...] = ()) -> Any:
    """The pydantic type a generated model uses for `t` (constraints on the inner type)."""
    if isinstance(t, model.Optional):
        return py_type(t.inner, constraints) | None
    match t:
        case model.Primitive(name="url"):
            base: Any = Annotated[str, AfterValidator(check_url)]
        case model.Primitive(name="email"):
            base = Annotated[str, AfterValidator(check_email)]
        case model.Primitive(name=name):
            base = _EXACT[name]
        case model.ListOf(item=item):
            base = list[py_type(item)]  # type: ignore[misc]
        case model.MapOf(value=value):
            base = dict[str, py_type(value)]  # type: ignore[misc]
        case model.EnumType(members=members):
            base = Literal[members]
        case model.Record():
            fields: dict[str, Any] = {}
            for f in t.fields:
                annotation = py_type(f.type, f.constraints)
                fields[f.name] = (
                    (annotation, None) if isinstance(f.type, model.Optional) else (annotation, ...)
                )
            base = create_model(t.name, **fields)
    keywords = {
        "ge": "ge",
        "gt": "gt",
        "le": "le",
        "lt": "lt",
        "min_len": "min_length",
        "max_len": "max_length",
    }
    limits: dict[str, Any] = {keywords[k]: v for k, v in constraints if k in keywords}
    return Annotated[base, Field(**limits)] if limits else base


def values_of(t: model.Type) -> st.SearchStrategy[Any]:
    """Raw values of `t`, most of which its model accepts (constraints are applied by
    filtering through the model)."""
    match t:
        case model.Optional(inner=inner):
            return st.none() | values_of(inner)
        case model.Primitive(name=name):
            return {
                "int": st.integers(-6, 6),
                "float": st.floats(-6, 6, allow_nan=False) | st.integers(-6, 6),
                "str": st.text(string.ascii_lowercase, max_size=4),
                "bool": st.booleans(),
                "json": st.none() | st.integers(-3, 3) | st.text(max_size=2),
                "date": st.dates().map(date.isoformat),
                "datetime": st.datetimes().map(datetime.isoformat),
                "url": st.sampled_from(["https://a.example/x", "http://b.example"]),
                "email": st.sampled_from(["a@b.co", "x.y@z.org"]),
            }[name]
        case model.ListOf(item=item):
            return st.lists(values_of(item), max_size=3)
        case model.MapOf(value=value):
            return st.dictionaries(
                st.text(string.ascii_lowercase, min_size=1, max_size=2),
                values_of(value),
                max_size=2,
            )
        case model.EnumType(members=members):
            return st.sampled_from(members)
        case model.Record(fields=fields):
            return st.fixed_dictionaries({f.name: values_of(f.type) for f in fields})
    raise AssertionError(t)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(st.data())
def test_yes_means_every_dumped_old_value_validates_under_the_new_model(
    data: st.DataObject,
) -> None:
    old = data.draw(types)
    new = data.draw(st.one_of(mutate(old), widen(old)))
    old_model, new_model = TypeAdapter(py_type(old)), TypeAdapter(py_type(new))
    try:
        stored = old_model.dump_python(
            old_model.validate_python(data.draw(values_of(old))), mode="json"
        )
    except ValidationError:
        assume(False)
        return
    if is_subschema(schema_of(old), schema_of(new)):
        new_model.validate_python(stored)  # raises if the answer was unsound


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_field_walk_agrees_with_the_whole_answer(data: st.DataObject) -> None:
    old = data.draw(_records(_types(1)).map(lambda t: rename(t, [0])))
    new = data.draw(st.one_of(mutate(old), widen(old)))
    assume(isinstance(new, model.Record))
    assert isinstance(old, model.Record) and isinstance(new, model.Record)
    old_schema, new_schema = record_json_schema(old), record_json_schema(new)
    deltas = field_deltas(old_schema, new_schema)
    assert all(d.forward for d in deltas) == is_subschema(old_schema, new_schema)
    assert all(d.backward for d in deltas) == is_subschema(new_schema, old_schema)


# -- schemas pydantic writes (plans built in Python) -----------------------------


def _pydantic_schema(
    extra: dict[str, Any], *, price: Any = None, kind: Any = None
) -> dict[str, Any]:
    from pydantic import BaseModel

    item = create_model("Item", sku=(str, ...), price=(float, price or Field(ge=0)))
    fields: dict[str, Any] = {
        "items": (list[item], ...),
        "note": (str | None, None),
        "kind": (kind or Literal["a", "b"], ...),
        **extra,
    }
    model: type[BaseModel] = create_model("Order", **fields)
    return model.model_json_schema()


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        pytest.param(_pydantic_schema({}), True, id="same"),
        pytest.param(_pydantic_schema({"channel": (str, "web")}), True, id="field with a default"),
        pytest.param(_pydantic_schema({"channel": (str, ...)}), False, id="required field"),
        pytest.param(_pydantic_schema({}, price=Field(ge=1)), False, id="nested bound tightened"),
        pytest.param(_pydantic_schema({}, price=Field()), True, id="nested bound dropped"),
        pytest.param(_pydantic_schema({}, kind=Literal["a", "b", "c"]), True, id="literal widened"),
        pytest.param(_pydantic_schema({}, kind=Literal["a"]), False, id="literal narrowed"),
    ],
)
def test_schemas_pydantic_writes(new: dict[str, Any], expected: bool) -> None:
    old = _pydantic_schema({})
    assert is_subschema(old, new) is expected
    assert all(d.forward for d in field_deltas(old, new)) is expected
