"""`json_data` is `json.loads(model.model_dump_json())` without the text where it can be:
the same data (types included) or the same error, for every output; and what it calls
storable is (the check the kernel then skips)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, field_serializer

from wfc.runtime.kernel.json_output import json_data
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
    assert _outcome(lambda: json_data(model)[0]) == _outcome(lambda: _through_text(model))
    try:
        data, storable = json_data(model)
    except Exception:
        return
    if storable:
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


def test_a_plain_output_is_known_storable_and_one_with_a_nul_is_not() -> None:
    """Nearly every output is plain: the kernel skips its storable walk for those, so a
    NUL (which PostgreSQL refuses) must keep an output off the plain path."""
    assert json_data(_Any(value={"n": 1, "tags": ["a", "b"], "x": 0.5})) == (
        {"value": {"n": 1, "tags": ["a", "b"], "x": 0.5}},
        True,
    )
    for nul in ({"text": "a\x00b"}, {"a\x00b": 1}, ["\x00"]):
        data, storable = json_data(_Any(value=nul))
        assert data == {"value": nul} and not storable
        assert unstorable_part(data) is not None
