"""Pydantic models the kernel builds from values it has already typed, without validating them.

Events and command results are frozen pydantic models, so that what a user or a
plugin sends is checked, and what they receive has a schema. The kernel builds
about twenty per run itself (every `stage:started`, every `job.execute` result),
from a clock's instant, a row's strings and integers, a result it holds: values of
the field's type already. Validating them again cost about 4 µs each, a tenth of a
memory run's instructions with the other models' share. `maker(kind)` gives a
function with the model's field names as keywords that builds the instance pydantic
would (`__dict__` in field order with the defaults filled in, the same
`model_fields_set`, no extra, no private state), skipping the validator.

What the caller passes must be what validation would have kept: an `int` for an
`int` field, a `float` for a `float` one (pydantic turns an `int` into a `float`,
and the JSON of `0` and `0.0` differ), an instant for an instant. A model whose
defaults are not plain values (a default factory, a mutable default), or that has
validators (its own or a field's), field constraints, a `model_post_init`, private
attributes or extra fields, is refused when its maker is made, not built wrong. A
maker's keywords are the field names, never their aliases. `tests/unit/test_prevalidated.py`
compares each maker's instances with validated ones, field by field and dump by dump.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)

_PLAIN_DEFAULTS = (type(None), str, int, float, bool)
_UNSET: Any = object()  # "not passed": the field takes its default, and is not in fields_set


def maker(kind: type[ModelT], *, checked: frozenset[str] = frozenset()) -> Callable[..., ModelT]:
    """A function building `kind` from keyword values already of their fields' types.

    `checked`: fields whose constraints, validators given with the type, or default
    factory the caller answers for: it checks each value passed (falling back to the
    validating constructor where one would fail) and always passes them, so they are
    required keywords here and their defaults never made."""
    _refuse_unbuildable(kind, checked)
    scope: dict[str, Any] = {
        "_new": object.__new__,
        "_set": object.__setattr__,
        "_kind": kind,
        "_UNSET": _UNSET,
    }
    parameters, lines, entries, required = [], [], [], []
    for number, (name, info) in enumerate(kind.model_fields.items()):
        if info.is_required() or name in checked:
            parameters.append(name)
            required.append(repr(name))
        else:
            scope[f"_default{number}"] = info.default
            parameters.append(f"{name}=_UNSET")
            lines += [
                f"    if {name} is _UNSET:",
                f"        {name} = _default{number}",
                "    else:",
                f"        given.add({name!r})",
            ]
        entries.append(f"{name!r}: {name}")
    source = [
        f"def make(*, {', '.join(parameters)}):" if parameters else "def make():",
        f"    given = {{{', '.join(required)}}}" if required else "    given = set()",
        *lines,
        "    made = _new(_kind)",
        f"    _set(made, '__dict__', {{{', '.join(entries)}}})",
        "    _set(made, '__pydantic_fields_set__', given)",
        "    _set(made, '__pydantic_extra__', None)",
        "    _set(made, '__pydantic_private__', None)",
        "    return made",
    ]
    exec("\n".join(source), scope)  # the text is built from the model's own field names
    make: Callable[..., ModelT] = scope["make"]
    make.__qualname__ = f"maker({kind.__qualname__})"
    return make


def _refuse_unbuildable(kind: type[BaseModel], checked: frozenset[str]) -> None:
    """Raise `TypeError` when building `kind` without validation could differ from
    validating: validators (the model's, or a field's given with its type), constraints,
    `model_post_init`, private attributes, extra fields kept, non-plain defaults."""
    strangers = sorted(checked - kind.model_fields.keys())
    if strangers:
        raise TypeError(f"{kind.__name__} has no fields {strangers} to check")
    decorators = kind.__pydantic_decorators__
    if (
        decorators.field_validators
        or decorators.model_validators
        or decorators.validators
        or decorators.root_validators
    ):
        raise TypeError(f"{kind.__name__} has validators: a maker would skip them")
    if kind.__private_attributes__:
        raise TypeError(f"{kind.__name__} has private attributes")
    if kind.model_config.get("extra") == "allow":
        raise TypeError(f"{kind.__name__} keeps extra fields")
    if kind.model_post_init is not BaseModel.model_post_init:
        raise TypeError(f"{kind.__name__} has model_post_init: a maker would skip it")
    for name, info in kind.model_fields.items():
        # Constraints (`Field(ge=0)`) and validators given with the type
        # (`Annotated[str, AfterValidator(...)]`) are the field's metadata. (An alias
        # changes nothing: a maker takes field names, as `populate_by_name` does.)
        if name in checked:
            continue
        if info.metadata:
            raise TypeError(f"{kind.__name__}.{name} is constrained or validated")
        if info.is_required():
            continue
        if info.default_factory is not None or type(info.default) not in _PLAIN_DEFAULTS:
            raise TypeError(f"{kind.__name__}.{name} has a default that is not a plain value")
