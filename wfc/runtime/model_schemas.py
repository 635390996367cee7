"""A pydantic model's JSON schema, made once per model class.

`WorkflowBuilder` writes each stage's input, output and config schemas into the plan,
and the workflow's input schema again per stage it checks: pydantic builds the schema
anew at every `model_json_schema()` call, about 0.4 ms for a small model, so a three-stage
workflow took 5–7 ms to build, most of it the same few schemas again. Workflows built
per test, or dozens of them at a process's start, paid that each time. A model class's
schema does not change once pydantic could build it (a model still waiting for a
forward reference raises, and is not kept), so it is kept per class, weakly: classes
made at run time (in tests, by `create_model`) are not held alive by it. Each caller
gets a copy of its own, since plans are built from it and callers may change theirs.
"""

from __future__ import annotations

import weakref
from typing import Any

from pydantic import BaseModel

from wfc.runtime.copies import json_copy

_SCHEMAS: weakref.WeakKeyDictionary[type[BaseModel], dict[str, Any]] = weakref.WeakKeyDictionary()


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model.model_json_schema()`, made once per class; a copy the caller owns."""
    schema = _SCHEMAS.get(model)
    if schema is None:
        schema = _SCHEMAS[model] = model.model_json_schema()
    return json_copy(schema)
