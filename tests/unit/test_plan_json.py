"""`indented_json` writes exactly what `json.dumps(sort_keys=True, indent=2)` writes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from wfc.plan_json import indented_json

_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(_values)
@example({"b": [1e-05, 1.5], "a": "x"})  # spelt `0.00001` by pydantic-core
@example([float("inf"), float("nan")])  # `Infinity` / `NaN` in json, `null` in pydantic-core
@example({"s": "\ud800"})  # a lone surrogate, which pydantic-core refuses to encode
@example({"big": 10**40, "neg": -(2**63), "ctl": '\x00\x1f\x7f\u2028"\\'})
def test_same_text_as_json_dumps(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert indented_json(value) == expected
