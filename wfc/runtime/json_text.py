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

# Per model class: how its JSON text is validated (`_text_path`): not at all (the value
# path), by its validator, or by its own `model_validate_json`.
_PATHS: WeakKeyDictionary[type[BaseModel], int] = WeakKeyDictionary()
_VALUE_ONLY, _VALIDATOR, _OWN_METHOD = 0, 1, 2
_PYDANTIC_VALIDATE_JSON = BaseModel.model_validate_json.__func__  # type: ignore[attr-defined]


def validated_from_text(model: type[ModelT], text: bytes) -> ModelT | None:
    """`text` validated by `model` from the text itself, when that gives what validating
    the parsed value gives; None when it might not, or when the text is refused (the
    caller then validates the parsed value, for that path's own error wording).

    Where the class keeps pydantic's own `model_validate_json`, its validator is called
    as that classmethod calls it (with its defaults), without the classmethod: every
    stage's input comes here, and a model class's attributes are slow to read on
    Python 3.11 (pydantic's metaclass defines `__getattr__`)."""
    path = _PATHS.get(model)
    if path is None:
        path = _PATHS[model] = _text_path(model)
    if path == _VALUE_ONLY:
        return None
    try:
        if path == _VALIDATOR:
            validated: ModelT = model.__pydantic_validator__.validate_json(text)
            return validated
        return model.model_validate_json(text)
    except ValidationError:
        return None


def _text_path(model: type[BaseModel]) -> int:
    if _differs(model.__pydantic_core_schema__):
        return _VALUE_ONLY
    own = getattr(model.model_validate_json, "__func__", None) is _PYDANTIC_VALIDATE_JSON
    return _VALIDATOR if own else _OWN_METHOD


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
