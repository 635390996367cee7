"""Copies made cheaply: `changed`, a frozen, slotted record with some fields changed, and
`json_copy`, a deep copy of a JSON value.

The records (`wfc.runtime.records`) are immutable; every write of a store, and
many steps of the kernel, make a changed copy of one. Stage outputs are JSON
values that a stage body may change in place, so the kernel hands each reader a
copy of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar

from wfc.runtime.record_builders import slot_twin, slots_are_fields

RowT = TypeVar("RowT")
ValueT = TypeVar("ValueT")
_COPIERS: dict[type, dict[tuple[str, ...] | None, Any]] = {}
_ATOMS = frozenset({str, int, float, bool, type(None)})  # immutable: shared, not copied


def json_copy(value: ValueT) -> ValueT:
    """`copy.deepcopy` for a JSON value (dicts, lists and atoms, as `json.loads` makes them),
    at a fraction of its cost: no memo of objects seen (a JSON value shares none), and no
    dispatch through `copy`'s tables per atom. Anything else is handed to `deepcopy`."""
    kind = type(value)
    made: Any
    if kind is dict:
        made = {
            key: item if type(item) in _ATOMS else json_copy(item)
            for key, item in value.items()  # type: ignore[attr-defined]
        }
    elif kind is list:
        made = [item if type(item) in _ATOMS else json_copy(item) for item in value]  # type: ignore[attr-defined]
    elif kind in _ATOMS:
        made = value
    else:
        made = copy.deepcopy(value)
    return made  # type: ignore[no-any-return]


def changed(row: RowT, changes: Mapping[str, Any]) -> RowT:
    """`dataclasses.replace` for the frozen, slotted records, at a fraction of its cost.

    Every write of a store, and many steps of the kernel, copy a record; `replace` walks
    the class's fields and runs `__init__`, which sets each through `object.__setattr__`,
    per call. The records check nothing in `__init__`, so setting the slots through
    their descriptors builds the same value; a copier written out for each class and
    each set of changed fields (`_copier`) does that without a loop over the fields, nor
    a test per field of whether it changed.
    """
    kind = type(row)
    copiers = _COPIERS.get(kind)
    if copiers is None:
        copiers = _COPIERS[kind] = {}
    names = tuple(changes)
    copier = copiers.get(names)
    if copier is None:
        if len(copiers) < _MOST_COPIERS:
            copier = copiers[names] = _copier(kind, names)
        else:  # one that asks about each field, made once per class
            copier = copiers.get(None) or copiers.setdefault(None, _copier(kind, None))
    copy: RowT = copier(row, changes)
    return copy


# The sets of fields the runtime changes per class are a few dozen at most; past this a
# class's copies are made by one copier that asks the changes about each field.
_MOST_COPIERS = 256


def _copier(kind: type, changing: tuple[str, ...] | None) -> Any:
    """`copy(row, changes)` for one record class and the fields `changing` (in any order;
    None: any fields): a line per field, storing the changed value or the row's in a
    plain object of the record's layout (`record_builders.slot_twin`: ordinary slot
    stores, which CPython specialises, where the frozen class's slots take a descriptor
    call each), then giving it the record's class. A change naming no field of the class
    is refused."""
    if not slots_are_fields(kind):  # a subclass's, say: its layout is not its twin's
        return lambda row, changes: replace(row, **changes)
    names = [f.name for f in fields(kind)]
    scope: dict[str, Any] = {
        "new": object.__new__,
        "kind": kind,
        "twin": slot_twin(kind),
        "names": frozenset(names),
    }
    lines = ["def copy(row, changes):"]
    if changing is None:
        lines += [
            "    if not names.issuperset(changes):",
            "        unknown = sorted(changes.keys() - names)",
            "        raise TypeError(f'{kind.__name__} has no field {unknown}')",
        ]
    else:
        unknown = sorted(set(changing) - set(names))
        if unknown:
            raise TypeError(f"{kind.__name__} has no field {unknown}")
    lines.append("    made = new(twin)")
    for name in names:
        if changing is None:
            value = f"changes[{name!r}] if {name!r} in changes else row.{name}"
        else:
            value = f"changes[{name!r}]" if name in changing else f"row.{name}"
        lines.append(f"    made.{name} = {value}")
    lines += ["    made.__class__ = kind", "    return made"]
    exec("\n".join(lines), scope)  # the text is built from the class's own field names
    return scope["copy"]
