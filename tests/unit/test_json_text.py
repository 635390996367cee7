"""Validated from JSON text only where the text gives what the parsed value gives."""

from __future__ import annotations

import json
from datetime import date

from pydantic import BaseModel, ConfigDict

from wfc.runtime.json_text import validated_from_text


class _Plain(BaseModel):
    name: str
    day: date
    tags: list[str] = []
    note: str | None = None  # nullable, not a union: alike


class _Union(BaseModel):
    when: date | str


class _Deep(BaseModel):
    inner: list[_Union]


class _Base64(BaseModel):
    model_config = ConfigDict(val_json_bytes="base64")
    blob: bytes


def test_a_plain_model_is_validated_from_the_text() -> None:
    text = b'{"name":"a","day":"2026-01-31","tags":["x"]}'
    assert validated_from_text(_Plain, text) == _Plain.model_validate(json.loads(text))


def test_a_refused_text_is_left_to_the_value_path() -> None:
    assert validated_from_text(_Plain, b'{"name":1}') is None


def test_a_union_anywhere_is_left_to_the_value_path() -> None:
    text = b'{"when":"2026-01-31"}'
    assert type(_Union.model_validate_json(text).when) is date  # the text's choice
    assert type(_Union.model_validate(json.loads(text)).when) is str  # the value's
    assert validated_from_text(_Union, text) is None
    assert validated_from_text(_Deep, b'{"inner":[{"when":"2026-01-31"}]}') is None


def test_bytes_decoded_only_from_text_are_left_to_the_value_path() -> None:
    assert validated_from_text(_Base64, b'{"blob":"aGk="}') is None


class _OwnJson(BaseModel):
    """A model whose class validates JSON text its own way (here: names trimmed)."""

    name: str

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: object) -> _OwnJson:
        value = json.loads(json_data)
        return cls.model_validate({"name": str(value["name"]).strip()})


def test_a_model_with_its_own_json_validation_is_validated_by_it() -> None:
    validated = validated_from_text(_OwnJson, b'{"name":"  padded  "}')
    assert validated == _OwnJson(name="padded")
