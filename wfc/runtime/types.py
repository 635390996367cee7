"""Field types that generated models use beyond Python's own: `Url`, `Email`, `BlobRef`.

They are strings (or a small model) at run time, so stage code handles them
without conversions, and they carry the JSON Schema `format` the plan states.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, WithJsonSchema

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError("not an absolute URL (scheme://host/…)")
    return value


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


Url = Annotated[str, AfterValidator(_check_url), WithJsonSchema({"type": "string", "format": "uri"})]
"""An absolute URL, kept as the string the user gave."""

Email = Annotated[
    str, AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})
]
"""An email address, kept as a string."""


class BlobRef(BaseModel):
    """A reference to a payload in the blob store (`ctx.blobs`)."""

    key: str
