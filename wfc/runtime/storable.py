"""What every database can store, checked before a write rather than learnt from its refusal.

PostgreSQL refuses U+0000 in text and JSON (and NaN or infinities in JSON),
and no UTF-8 driver can send a lone surrogate (U+D800–U+DFFF, which Python
strings may hold). A stage
output or error holding one used to fail the outcome's commit after the
stage had run: the job stayed leased, was reaped and ran again, without end
(a paid model call each time). So a value the runtime stores is checked
first, the same way on every database: an output that cannot be stored
fails the attempt with a clear error, and text the runtime writes itself
(errors, log lines) has such characters escaped, since losing a NUL from an
error message loses nothing.
"""

from __future__ import annotations

import math
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _clean(text: str) -> bool:
    """Whether `text` holds no character no database takes. An ASCII string can hold only
    U+0000 of them, which `in` finds a dozen times faster than the pattern's search (whose
    character class with the surrogates' range is tried at every character): 24 against
    350 ns for a 100-character sentence, and nearly every string stored is ASCII."""
    return "\x00" not in text if text.isascii() else _UNSTORABLE.search(text) is None


def storable_text(text: str) -> str:
    """`text` with each character no database takes written as its escape (`\\u0000`)."""
    if _clean(text):
        return text
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def storable_json(value: Any) -> Any:
    """JSON `value` with every string and key made `storable_text` (for data the runtime
    writes itself, such as a log line's fields)."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_json(key): storable_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(item) for item in value]
    return value


def unstorable_part(value: Any, where: str = "$") -> str | None:
    """Where in the JSON `value` a string (or key) holds a character no database takes, or
    a number is not finite, and which — `"$.pages[2].text: U+0000"` — or None when all of
    it can be stored.

    Every run's input and config and every stage's output pass here, and nearly all of
    them can be stored: they are walked first without naming where each part is (a
    string built per key and item), and only a value that fails is walked again to say
    where."""
    if _storable(value):
        return None
    return _locate(value, where)


def _storable(value: Any) -> bool:
    """Whether all of `value` can be stored: `_locate(value) is None`, answered without
    building the places. JSON's own types are told by their exact type; anything else
    (a subclass, another type) is left to `_locate`."""
    kind = type(value)
    if kind is str:
        return _clean(value)
    if kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        # A string key and an int, bool or None item, nearly every entry of an output, are
        # checked here, without a call each (a call costs more than the check).
        for key, item in value.items():
            if type(key) is str:
                if not _clean(key):
                    return False
            elif not _storable(key):
                return False
            plain = type(item)
            if plain is int or plain is bool or item is None:
                continue
            if not _storable(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            plain = type(item)
            if plain is int or plain is bool or item is None:
                continue
            if not _storable(item):
                return False
        return True
    return _locate(value, "$") is None


def _locate(value: Any, where: str) -> str | None:
    """`unstorable_part`, walking `value` with the place of each part."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        return None if found is None else f"{where}: U+{ord(found.group()):04X}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where}: {value} (JSON has no such number)"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _locate(key, f"{where} (a key)") or _locate(item, f"{where}.{key}")
            if problem is not None:
                return problem
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _locate(item, f"{where}[{index}]")
            if problem is not None:
                return problem
    return None
