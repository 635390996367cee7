"""A model validated straight from stored JSON text, where that gives what the parsed value would.

The kernel hands a stage's output on as the JSON text it stored, and validates the
next stage's input (and a typed dependency) from that text: pydantic-core reads the
text into the model without a tree of dicts and lists made only to be copied
(`docs/discussions.md`, "A stage's output is JSON text ..."). Validating JSON text and
validating the value `json.loads` makes of it agree for almost every schema, but not
all:

- a union in smart mode chooses its member by how exactly each one matches, and JSON
  text matches differently (a `date | str` field takes "2026-01-31" as a `date` from
  text and as a `str` from a value), so the stage would get another type;
- `val_json_bytes` (base64, hex) decodes a `bytes` field from text only.

A model whose schema holds either takes the value path, as before the text path
existed; what it costs is the parse. The answer is kept per model class.
"""

from __future__ import annotations

from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

_ALIKE: WeakKeyDictionary[type[BaseModel], bool] = WeakKeyDictionary()


def validated_from_text(model: type[ModelT], text: bytes) -> ModelT | None:
    """`text` validated by `model` from the text itself, when that gives what validating
    the parsed value gives; None when it might not, or when the text is refused (the
    caller then validates the parsed value, for that path's own error wording)."""
    if not _text_alike(model):
        return None
    try:
        return model.model_validate_json(text)
    except ValidationError:
        return None


def _text_alike(model: type[BaseModel]) -> bool:
    alike = _ALIKE.get(model)
    if alike is None:
        alike = _ALIKE[model] = not _differs(model.__pydantic_core_schema__)
    return alike


def _differs(schema: Any) -> bool:
    """Whether any part of a core schema validates JSON text otherwise than a value."""
    if isinstance(schema, dict):
        if schema.get("type") == "union":  # smart or left-to-right, it picks by the input
            return True
        if schema.get("val_json_bytes", "utf8") != "utf8":  # a model's or field's config
            return True
        return any(_differs(value) for value in schema.values())
    if isinstance(schema, list | tuple):
        return any(_differs(item) for item in schema)
    return False
