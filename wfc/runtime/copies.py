"""`changed`: a copy of a frozen, slotted record with some fields changed, made cheaply.

The records (`wfc.runtime.records`) are immutable; every write of a store, and
many steps of the kernel, make a changed copy of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

RowT = TypeVar("RowT")
_COPIERS: dict[type, Any] = {}


def changed(row: RowT, changes: Mapping[str, Any]) -> RowT:
    """`dataclasses.replace` for the frozen, slotted records, at a third of its cost.

    Every write of a store, and many steps of the kernel, copy a record; `replace` walks
    the class's fields and runs `__init__`, which sets each through `object.__setattr__`,
    per call. The records check nothing in `__init__`, so setting the slots through
    their descriptors builds the same value; a copier written out for each class
    (`_copier`) does that without a loop over the fields.
    """
    copier = _COPIERS.get(type(row))
    if copier is None:
        copier = _COPIERS[type(row)] = _copier(type(row))
    copy: RowT = copier(row, changes)
    return copy


def _copier(kind: type) -> Any:
    """`copy(row, changes)` for one record class: a line per field, setting its slot to the
    changed value or the row's; a change naming no field of the class is refused."""
    names = [f.name for f in fields(kind)]
    scope: dict[str, Any] = {"new": object.__new__, "kind": kind, "names": frozenset(names)}
    lines = [
        "def copy(row, changes):",
        "    if not names.issuperset(changes):",
        "        unknown = sorted(changes.keys() - names)",
        "        raise TypeError(f'{kind.__name__} has no field {unknown}')",
        "    made = new(kind)",
    ]
    for number, name in enumerate(names):
        scope[f"set{number}"] = kind.__dict__[name].__set__
        lines.append(
            f"    set{number}(made, changes[{name!r}] if {name!r} in changes else row.{name})"
        )
    lines.append("    return made")
    exec("\n".join(lines), scope)  # the text is built from the class's own field names
    return scope["copy"]
