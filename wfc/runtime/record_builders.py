"""How records are built and copied cheaply: a frozen, slotted dataclass's instance filled
in a plain twin of its layout, then given its class.

The kernel and the stores build and copy about sixty records per three-stage run, and a
frozen dataclass sets each field through its slot's descriptor (`object.__setattr__`),
field by field. Here the slots are filled by ordinary attribute stores on an object of a
plain class with the same slots (`slot_twin`), which CPython specialises, and the object
is then given the record's class: the same value, in about half the instructions. Only a
class whose layout is its own slots alone qualifies (`slots_are_fields`); any other is
built through its setters. The functions are written from the class's own field names
(`exec`), once per class. `docs/discussions.md` ("Records filled in a twin of their
layout") says why and what was measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, TypeVar, cast

RecordT = TypeVar("RecordT")


def quick_init(kind: type[RecordT]) -> type[RecordT]:
    """Give a frozen, slotted dataclass an `__init__` that fills its slots directly.

    The `__init__` that `dataclass` writes for a frozen class sets each field through
    `object.__setattr__`, which looks the field's descriptor up by name, field by field,
    for every instance. This one lends the object a plain class of the same layout
    (`slot_twin`) while it fills the slots by ordinary attribute stores, which CPython
    specialises for slots, then gives it its class back: a stage row (29 fields) is
    built in half the instructions of calling each slot's setter in turn, which was
    itself about half of `dataclass`'s. A subclass's instance, whose layout may differ,
    and a class of three fields or fewer (the two class changes would cost more than
    they save) call each slot's setter. The kernel and the stores build and copy about
    sixty records per three-stage run, so it shows. The signature is the same:
    keyword-only where the class is, the same defaults and default factories; what
    `dataclass` checks or adds besides (`__eq__`, `__repr__`, `replace`, pickling) is
    untouched.
    """
    if hasattr(kind, "__post_init__"):
        raise TypeError(f"{kind.__name__} has __post_init__: quick_init would skip it")
    columns = fields(cast(Any, kind))
    lend = len(columns) > 3 and slots_are_fields(kind)
    scope: dict[str, Any] = {"_FACTORY": _FACTORY, "_kind": kind, "_set_class": object.__setattr__}
    if lend:
        scope["_twin"] = slot_twin(kind)
    parameters, made, stores, setters = [], [], [], []
    for number, column in enumerate(columns):
        if not column.init:
            raise TypeError(f"{kind.__name__}.{column.name} is not an __init__ field")
        name, setter = column.name, f"_set{number}"
        scope[setter] = kind.__dict__[name].__set__  # the slot's own descriptor
        if column.default is not MISSING:
            scope[f"_default{number}"] = column.default
            parameters.append(f"{name}=_default{number}")
        elif column.default_factory is not MISSING:
            scope[f"_make{number}"] = column.default_factory
            parameters.append(f"{name}=_FACTORY")
            made.append(f"    if {name} is _FACTORY:\n        {name} = _make{number}()")
        else:
            parameters.append(name)
        stores.append(f"        self.{name} = {name}")
        setters.append(f"    {setter}(self, {name})")
    keyword_only = {column.kw_only for column in columns}
    if len(keyword_only) > 1:
        raise TypeError(f"{kind.__name__} mixes keyword-only and positional fields")
    star = ["*"] if parameters and keyword_only == {True} else []
    body = made
    if lend:
        body += [
            "    if type(self) is _kind:",
            "        _set_class(self, '__class__', _twin)",
            *stores,
            "        self.__class__ = _kind",
            "        return",
        ]
    body += setters
    source = f"def __init__({', '.join(['self', *star, *parameters])}):\n"
    source += "\n".join(body) or "    pass"
    exec(source, scope)  # the text is built from the class's own field names
    init = scope["__init__"]
    init.__qualname__ = f"{kind.__qualname__}.__init__"
    init.__doc__ = kind.__init__.__doc__
    kind.__init__ = init  # type: ignore[method-assign]
    return kind


def slots_are_fields(kind: type) -> bool:
    """Whether `kind`'s layout is its own slots alone, which are its fields in order: a
    twin of it (`slot_twin`, based on `object`) then has the same layout. A subclass's
    slots add to its base's, and any base but `object` (a mixin, even with no slots) makes
    the layouts differ, which CPython refuses at the class switch."""
    names = tuple(column.name for column in fields(cast(Any, kind)))
    return kind.__bases__ == (object,) and names == tuple(kind.__dict__.get("__slots__", ()))


_FACTORY: Any = object()  # "not given": the field's default factory makes its value


def builder(kind: type[RecordT]) -> Callable[..., RecordT]:
    """A function that builds a `kind` record from its fields as keywords, at about half
    the cost of calling the class; for the records built on every stage of every run.

    Calling a class with keywords packs them into a dict and unpacks it again for
    `__init__`, and a frozen class's slots can only be set through their descriptors
    (a call each). The function made here is called with the keywords as they are, and
    fills the slots of a plain object of the same layout (`slot_twin`) by ordinary
    attribute stores, which CPython specialises for slots; then gives the object its
    class. The value is the same record `kind(...)` builds: same fields, defaults and
    default factories, keyword-only. Built once per class and kept.
    """
    made = _BUILDERS.get(kind)
    if made is None:
        made = _BUILDERS[kind] = _make_builder(kind)
    return cast(Callable[..., RecordT], made)


def slot_twin(kind: type) -> type:
    """A plain class with `kind`'s slots, in its order: an object of it can be given
    `kind` as its class (`obj.__class__ = kind`), the layouts being the same. Its slots
    are set by ordinary stores, where a frozen class's `__setattr__` refuses them."""
    twin = _TWINS.get(kind)
    if twin is None:
        slots = tuple(kind.__dict__["__slots__"])
        twin = _TWINS[kind] = type(f"{kind.__name__}Slots", (), {"__slots__": slots})
    return twin


_BUILDERS: dict[type, Callable[..., Any]] = {}
_TWINS: dict[type, type] = {}


def _make_builder(kind: type) -> Callable[..., Any]:
    if hasattr(kind, "__post_init__"):
        raise TypeError(f"{kind.__name__} has __post_init__: a builder would skip it")
    if not slots_are_fields(kind):
        raise TypeError(f"{kind.__name__} is not a slotted record of its fields alone")
    columns = fields(cast(Any, kind))
    scope: dict[str, Any] = {
        "_FACTORY": _FACTORY,
        "_new": object.__new__,
        "_twin": slot_twin(kind),
        "_kind": kind,
    }
    parameters, lines = [], []
    for number, column in enumerate(columns):
        name, value = column.name, column.name
        if column.default is not MISSING:
            scope[f"_default{number}"] = column.default
            parameters.append(f"{name}=_default{number}")
        elif column.default_factory is not MISSING:
            scope[f"_make{number}"] = column.default_factory
            parameters.append(f"{name}=_FACTORY")
            value = f"_make{number}() if {name} is _FACTORY else {name}"
        else:
            parameters.append(name)
        lines.append(f"    made.{name} = {value}")
    source = [
        f"def build(*, {', '.join(parameters)}):",
        "    made = _new(_twin)",
        *lines,
        "    made.__class__ = _kind",
        "    return made",
    ]
    exec("\n".join(source), scope)  # the text is built from the class's own field names
    build: Callable[..., Any] = scope["build"]
    build.__qualname__ = f"builder({kind.__qualname__})"
    return build
