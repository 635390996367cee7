"""A stage's validated output as JSON: the text stored, and the data the text reads back as.

Every stage's output passes here. What is stored is the model's JSON text
(`model_dump_json`), and what the caller of `job.execute` gets back is that text read
back (`json.loads`); the next stages read the text. The text is written once, straight
from the model by its serializer (pydantic-core), and is the stored text itself
(`Produced.text`), so neither a Python tree dumped from the model, nor a walk of it,
nor a second encoding of it is made: for a 10,000-record output those were 4, 9 and
3 ms of a stage, and the tree's 20,000 containers fed the cyclic collector. The data
the caller gets is read back from the text by pydantic-core's parser, which reads
JSON text as `json.loads` does, in half its time.

The text also answers whether every database can store the output
(`wfc.runtime.storable`), which was a walk of the data: the serializer refuses a lone
surrogate, escapes U+0000 as `\\u0000`, and writes a non-finite float as `null` or,
when the model asks for it (`ser_json_inf_nan`), as `NaN` or `Infinity`. So a text
holding none of those three byte strings is storable. One that holds one (a NUL, a
constant, or the same letters inside a string, such as a string holding a backslash
before `u0000`) is read back with `json.loads` and walked by the kernel's check,
which gives the error it always gave; a serializer's error is raised as
`model_dump_json` raises it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import from_json

# What the serializer writes for a value no database takes: U+0000, and a non-finite
# float under `ser_json_inf_nan="constants"` (`-Infinity` holds `Infinity`).
_MAYBE_UNSTORABLE = (b"\\u0000", b"NaN", b"Infinity")
_MODEL_DUMP = BaseModel.model_dump
_MODEL_DUMP_JSON = BaseModel.model_dump_json


def json_output(output: BaseModel) -> tuple[Any, bytes | None]:
    """`json.loads(output.model_dump_json())`; and the text, when it proves every database
    can store the output (see the module's docstring), which is then the text to store.
    A model whose class writes its own `model_dump` (to leave a secret out, say) is stored
    as that dump, as it always was; one that writes its own `model_dump_json`, as that."""
    kind = type(output)
    if kind.model_dump is not _MODEL_DUMP:
        return output.model_dump(mode="json"), None  # checked, then encoded, by the kernel
    if kind.model_dump_json is not _MODEL_DUMP_JSON:
        return json.loads(output.model_dump_json()), None
    serializer = output.__pydantic_serializer__
    try:
        text: bytes = serializer.to_json(output)  # what `model_dump_json` returns, as bytes
    except Exception:  # the text's own error, raised as `model_dump_json` raises it
        return json.loads(output.model_dump_json()), None
    for part in _MAYBE_UNSTORABLE:
        if part in text:
            return json.loads(text), None
    return from_json(text), text
