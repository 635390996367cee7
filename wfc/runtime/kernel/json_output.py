"""A stage's validated output as JSON data: what `json.loads(output.model_dump_json())`
gives, without writing and parsing the text when the two cannot differ.

Every stage's output passes here. The round trip through text was about a tenth of a
stage's own Python on the memory adapters, and `model_dump(mode="json")` builds the same
data from the same serializer, except where JSON text changes a value: a non-finite
float (`null`, or `Infinity` under `ser_json_inf_nan`), and a string the text cannot
hold (a lone surrogate makes `model_dump_json` raise). So the dump is taken only when
it is a plain tree (dicts with ASCII string keys, lists, ASCII strings, integers,
booleans, None and finite floats), where both give equal data; anything else, or a dump
that raises, goes through the text as before, with its errors.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel


def json_data(output: BaseModel) -> Any:
    """`json.loads(output.model_dump_json())`, built without the text when it is plain."""
    try:
        dumped = output.model_dump(mode="json")
    except Exception:  # the text's own error, as before
        dumped = None
    if dumped is not None and _plain(dumped):
        return dumped
    return json.loads(output.model_dump_json())


def _plain(value: Any) -> bool:
    """Whether JSON text would give `value` back equal (see the module's docstring)."""
    kind = type(value)
    if kind is str:
        return str.isascii(value)
    if kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:  # loops, not `all()` over a generator: a frame less per container
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not _plain(item):
                return False
        return True
    return False
