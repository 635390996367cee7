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

The same walk answers whether every database can store the output
(`wfc.runtime.storable`), which was a second walk of the same tree: a plain tree's
only character no database takes is U+0000 (a surrogate is not ASCII), so a plain
tree without one is storable. Such a tree counts as plain here only without a NUL,
and `json_data` says when it gave one (`Produced.storable`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel


def json_data(output: BaseModel) -> tuple[Any, bool]:
    """`json.loads(output.model_dump_json())`, built without the text when it is plain;
    and whether it was, which proves it storable."""
    try:
        dumped = output.model_dump(mode="json")
    except Exception:  # the text's own error, as before
        dumped = None
    if dumped is not None and _plain(dumped):
        return dumped, True
    return json.loads(output.model_dump_json()), False


def _plain(value: Any) -> bool:
    """Whether JSON text would give `value` back equal, and it holds no U+0000 (see the
    module's docstring)."""
    kind = type(value)
    if kind is str:
        return str.isascii(value) and "\x00" not in value
    if kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:  # loops, not `all()` over a generator: a frame less per container
        for key, item in value.items():
            if type(key) is not str or not _plain(key) or not _plain(item):
                return False
        return True
    if kind is list:
        for item in value:
            if not _plain(item):
                return False
        return True
    return False
