"""`json_copy`: a deep copy of a JSON value, made without `copy.deepcopy`'s machinery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from wfc.runtime.copies import json_copy


def test_a_json_value_is_copied_all_the_way_down() -> None:
    value: Any = {"a": [1, {"b": "x", "c": [None, True, 2.5]}], "d": {}}
    made = json_copy(value)
    assert made == value
    assert made is not value
    assert made["a"] is not value["a"]
    assert made["a"][1] is not value["a"][1]
    assert made["a"][1]["c"] is not value["a"][1]["c"]
    made["a"][1]["c"].append(3)
    assert value["a"][1]["c"] == [None, True, 2.5]


def test_atoms_are_shared_and_other_kinds_go_to_deepcopy() -> None:
    assert json_copy("text") == "text" and json_copy(3) == 3 and json_copy(None) is None
    when = datetime(2026, 1, 2, tzinfo=UTC)
    nested: Any = {"at": when, "pair": (1, [2])}
    made = json_copy(nested)
    assert made == nested
    assert made["pair"][1] is not nested["pair"][1]  # a tuple's contents copied too
