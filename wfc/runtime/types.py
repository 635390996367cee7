"""Field types that generated models use beyond Python's own: `Url`, `Email`, `BlobRef`.

They are strings (or a small model) at run time, so stage code handles them
without conversions, and they carry the JSON Schema `format` the plan states.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, WithJsonSchema

from wfc.formats import check_email, check_url

__all__ = ["BlobRef", "Email", "Url", "check_email", "check_url"]

Url = Annotated[str, AfterValidator(check_url), WithJsonSchema({"type": "string", "format": "uri"})]
"""An absolute URL, kept as the string the user gave."""

Email = Annotated[
    str, AfterValidator(check_email), WithJsonSchema({"type": "string", "format": "email"})
]
"""An email address, kept as a string."""


class BlobRef(BaseModel):
    """A reference to a payload in the blob store (`ctx.blobs`)."""

    key: str
