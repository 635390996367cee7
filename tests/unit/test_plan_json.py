"""`indented_json` writes exactly what `json.dumps(sort_keys=True, indent=2)` writes, and a
fingerprinted plan writes the same JSON from the compact text it hashed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from wfc.compiler.driver import analyse
from wfc.compiler.lower import lower
from wfc.plan import Plan
from wfc.plan_json import indented_json, indented_json_of_sorted

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "documents" / "pipeline.wf"

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


@given(st.dictionaries(st.text(), _values, max_size=5), st.text())
@example({"b": [1e-05], "a": "x"}, "sha256:0")  # an exponent: back through `json.dumps`
@example({"s": "\ud800"}, "sha256:0")  # a lone surrogate
@example({"fingerprint": 1, "z": float("inf")}, "sha256:0")
def test_from_sorted_compact_text_same_as_json_dumps(value: dict[str, Any], digest: str) -> None:
    """`Plan.to_json` after `with_fingerprint` starts from the compact text it hashed."""
    compact = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = json.dumps(
        value | {"fingerprint": digest}, sort_keys=True, indent=2, ensure_ascii=False
    )
    assert indented_json_of_sorted(compact, {"fingerprint": digest}) == expected + "\n"


def _example_plan() -> Plan:
    checked, diagnostics = analyse(EXAMPLE)
    assert checked is not None, diagnostics
    return lower(checked)


def test_a_fingerprinted_plan_writes_what_a_loaded_one_writes() -> None:
    plan = _example_plan()  # lowering fingerprints it, keeping the text it hashed
    loaded = Plan.from_json(plan.to_json())
    assert loaded.to_json() == plan.to_json()
    assert loaded.verify_fingerprint() and loaded.fingerprint == plan.fingerprint


def test_a_copy_does_not_write_the_content_it_was_copied_from() -> None:
    plan = _example_plan()
    renamed = plan.model_copy(update={"name": "Renamed"})
    assert json.loads(renamed.to_json())["name"] == "Renamed"
    assert renamed.compute_fingerprint() != plan.fingerprint
