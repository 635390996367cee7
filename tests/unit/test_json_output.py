"""`json_output` gives `json.loads(model.model_dump_json())`: the same data (types included)
or the same error, for every output; and the text it hands on to be stored is that text,
given only when every database can store it (the check the kernel then skips)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, field_serializer

from wfc.runtime.kernel.json_output import json_output
from wfc.runtime.storable import unstorable_part


class _Any(BaseModel):
    value: Any


class _Float(BaseModel):
    value: float


class _Constants(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")
    value: float


class _Serialized(BaseModel):
    at: datetime

    @field_serializer("at", when_used="json")
    def _keep(self, at: datetime) -> Any:
        return {"when": at}  # not JSON data: the serializer's value is serialized again


def _through_text(model: BaseModel) -> Any:
    return json.loads(model.model_dump_json())


def _outcome(make: Any) -> tuple[str, str]:
    """The data as exact text (types and NaN visible), or the error's type."""
    try:
        return "data", json.dumps(make())
    except Exception as error:
        return "error", type(error).__name__


def _same(model: BaseModel) -> None:
    assert _outcome(lambda: json_output(model)[0]) == _outcome(lambda: _through_text(model))
    try:
        data, text = json_output(model)
    except Exception:
        return
    if text is not None:
        assert text == model.model_dump_json().encode()
        assert unstorable_part(data) is None


@pytest.mark.parametrize(
    "model",
    [
        _Any(value={"n": 1, "xs": [1.5, -0.0, True, None, "a"]}),
        _Any(value={1: "int key", (1, 2): "tuple key"}),
        _Any(value=(1, 2)),
        _Any(value=10**40),
        _Any(value="\ud800"),  # a lone surrogate: the text cannot hold it
        _Any(value={"\ud800": 1}),
        _Any(value="été"),
        _Any(value=b"\xff"),
        _Any(value=Decimal("1.10")),
        _Any(value=datetime(2025, 1, 1, tzinfo=UTC)),
        _Any(value=float("nan")),
        _Float(value=float("nan")),
        _Float(value=float("-inf")),
        _Constants(value=float("inf")),
        _Serialized(at=datetime(2025, 1, 1, tzinfo=UTC)),
    ],
    ids=repr,
)
def test_the_same_data_or_error_as_through_the_text(model: BaseModel) -> None:
    _same(model)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(_JSONISH)
def test_any_value_gives_what_the_text_gives(value: Any) -> None:
    _same(_Any(value=value))
    if isinstance(value, float):
        _same(_Float(value=value))
        _same(_Constants(value=value))


def test_a_storable_output_is_handed_on_as_text_and_one_with_a_nul_is_not() -> None:
    """Nearly every output can be stored: the kernel skips its storable walk for those and
    stores the text, so a NUL (which PostgreSQL refuses) or a non-finite number written as
    a constant must keep an output's text from being handed on."""
    assert json_output(_Any(value={"n": 1, "tags": ["a", "é"], "x": 0.5})) == (
        {"value": {"n": 1, "tags": ["a", "é"], "x": 0.5}},
        '{"value":{"n":1,"tags":["a","é"],"x":0.5}}'.encode(),
    )
    for nul in ({"text": "a\x00b"}, {"a\x00b": 1}, ["\x00"]):
        data, text = json_output(_Any(value=nul))
        assert data == {"value": nul} and text is None
        assert unstorable_part(data) is not None
    for number in (float("nan"), float("inf"), float("-inf")):
        data, text = json_output(_Constants(value=number))
        assert text is None and unstorable_part(data) is not None


def test_a_string_that_only_looks_unstorable_is_checked_and_stored() -> None:
    """The letters of a constant, or an escaped backslash before `u0000`, inside a string:
    not handed on as text, so the kernel walks the data, which it can store."""
    for looks in ("NaN", "-Infinity", "\\u0000"):
        data, text = json_output(_Any(value=looks))
        assert (data, text) == ({"value": looks}, None)
        assert unstorable_part(data) is None


class _OwnDump(BaseModel):
    value: int

    def model_dump_json(self, **_: Any) -> str:
        return '{"value": "its own"}'


def test_a_model_that_writes_its_own_json_is_read_through_it() -> None:
    assert json_output(_OwnDump(value=1)) == ({"value": "its own"}, None)
