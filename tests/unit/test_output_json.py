"""A stage's stored output (`rows.output_json`) reads back as the data it was made from,
whichever encoder wrote it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wfc.runtime.kernel.rows import output_json

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=16,
)


def _same(written: bytes, value: Any) -> bool:
    """Read back as `value`, types and key order included (`1 == 1.0 == True` in Python,
    and dicts compare without their order)."""
    return json.dumps(json.loads(written)) == json.dumps(value)


@given(_JSON)
def test_any_json_data_reads_back_equal(value: Any) -> None:
    assert _same(output_json(value), value)


@pytest.mark.parametrize(
    "value",
    [
        {"text": "été – 東京 \u2028", "n": 10**40, "x": -0.0, "big": 1e16},
        [None, True, 5e-324, {"nested": []}],
        "\ud800",  # a lone surrogate: pydantic-core refuses it, the stdlib escapes it
        {"\udfff": 1},
    ],
    ids=repr,
)
def test_what_it_writes_reads_back_equal(value: Any) -> None:
    assert _same(output_json(value), value)


def test_a_non_finite_number_is_written_as_the_stdlib_wrote_it() -> None:
    read = json.loads(output_json({"nan": math.nan, "inf": math.inf}))
    assert math.isnan(read["nan"]) and read["inf"] == math.inf
