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


def check_url(value: str) -> str:
    """`value` if it is an absolute URL; `ValueError` otherwise (shared with the compiler's default check)."""
    if not _URL.match(value):
        raise ValueError("not an absolute URL (scheme://host/…)")
    return value


def check_email(value: str) -> str:
    """`value` if it looks like an email address; `ValueError` otherwise."""
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


Url = Annotated[str, AfterValidator(check_url), WithJsonSchema({"type": "string", "format": "uri"})]
"""An absolute URL, kept as the string the user gave."""

Email = Annotated[
    str, AfterValidator(check_email), WithJsonSchema({"type": "string", "format": "email"})
]
"""An email address, kept as a string."""


class BlobRef(BaseModel):
    """A reference to a payload in the blob store (`ctx.blobs`)."""

    key: str
