"""`unstorable_part`: the first part of a JSON value no database stores, named by its
place, whichever walk (the quick one without places, or the one naming them) finds it."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import pytest

from wfc.runtime.storable import unstorable_part


class _Text(StrEnum):
    BAD = "a\x00b"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"n": 1, "s": "ok", "f": 1.5, "b": True, "z": None, "l": [1, (2, "x")]}, None),
        ("a\x00", "$: U+0000"),
        ({"pages": [{"text": "ok"}, {"text": "x\ud800"}]}, "$.pages[1].text: U+D800"),
        ({"k\x00": 1}, "$ (a key): U+0000"),
        ([1.0, [math.nan]], "$[1][0]: nan (JSON has no such number)"),
        ((1, math.inf), "$[1]: inf (JSON has no such number)"),
        ({"e": _Text.BAD}, "$.e: U+0000"),  # a str subclass, checked as a str
        ({_Text.BAD: 1}, "$ (a key): U+0000"),  # a str subclass as a key
        ({"a": 1, "b": None, "c": [True, 2, None, "\x00"]}, "$.c[3]: U+0000"),
        ({"a": 1, "b": math.inf}, "$.b: inf (JSON has no such number)"),
        ({"o": object()}, None),  # not JSON: left to the database's own refusal, as before
    ],
)
def test_the_first_unstorable_part_is_named_by_its_place(value: Any, problem: str | None) -> None:
    assert unstorable_part(value) == problem


def test_the_place_starts_where_the_caller_says() -> None:
    assert unstorable_part({"a": "\x00"}, "input") == "input.a: U+0000"
    assert unstorable_part({"a": 1}, "input") is None
