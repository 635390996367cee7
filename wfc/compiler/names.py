"""How source names become Python names, in one place for the checker, lowering and codegen."""

from __future__ import annotations


def class_name(identifier: str) -> str:
    """`extract_text` → `ExtractText`: the Python class name for a stage or record."""
    return "".join(part[:1].upper() + part[1:] for part in identifier.split("_") if part)
