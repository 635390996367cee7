"""String formats both halves check: the compiler on defaults, the runtime on values.

Kept outside `wfc.runtime` and `wfc.compiler` so that neither imports the other.
"""

from __future__ import annotations

import re

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_url(value: str) -> str:
    """`value` if it is an absolute URL; `ValueError` otherwise."""
    if not _URL.match(value):
        raise ValueError("not an absolute URL (scheme://host/…)")
    return value


def check_email(value: str) -> str:
    """`value` if it looks like an email address; `ValueError` otherwise."""
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value
