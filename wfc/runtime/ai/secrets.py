"""Keeping API keys out of everything wfc writes: the ledger, logs, stage errors.

Provider errors sometimes quote the key they were given (partly masked, or
not); the helper passes every message it records or raises through `redact`.
"""

from __future__ import annotations

import os
import re

KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "CO_API_KEY",
    "OPENROUTER_API_KEY",
)
KEY_SHAPES = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-*]{6,}|sk-[A-Za-z0-9_\-*]{8,}|AIza[A-Za-z0-9_\-]{20,}|gsk_[A-Za-z0-9]{10,})"
)
MASK = "***"


def redact(text: str) -> str:
    """`text` with the values of known key variables and key-shaped tokens masked."""
    for name in KEY_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 8:
            text = text.replace(value, MASK)
    return KEY_SHAPES.sub(MASK, text)
