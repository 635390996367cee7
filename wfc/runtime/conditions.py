"""Evaluating a stage's `when` (`wfc.plan.Condition`) against a run's input and outputs.

The compiler checks a condition's types against the schemas before anything
runs, so for a compiled plan evaluation cannot go wrong. A plan built by hand
is not checked, so a condition that compares what cannot be compared raises
`ConditionError` with the reason, and the kernel fails the stage with it
rather than guessing. Missing values (a skipped stage's output, an optional
field left out) read as null: `==`/`!=` compare them, an order comparison
with null is false, `in` null is false, `len` of null is 0, and a condition
that is null as a whole does not hold.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from wfc.plan import Condition

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


class ConditionError(Exception):
    """A condition that cannot be evaluated on these values (a hand-built plan's mistake)."""


def holds(condition: Condition, run_input: Any, outputs: Mapping[str, Any]) -> bool:
    """Whether `condition` holds for a run with this input and these stage outputs."""
    value = _value(condition, run_input, outputs)
    if value is None:  # a bare optional flag, or a field of a skipped stage: not true
        return False
    if not isinstance(value, bool):
        raise ConditionError(f"the condition gives {_shown(value)}, not true or false")
    return value


def _value(c: Condition, run_input: Any, outputs: Mapping[str, Any]) -> Any:
    def of(arg: Condition) -> Any:
        return _value(arg, run_input, outputs)

    match c.op:
        case "literal":
            return c.value
        case "field":
            root, *names = c.path
            return _lookup(run_input if root == "input" else outputs.get(root), names)
        case "not":
            return not _truth(of(c.args[0]), "not")
        case "and":
            return all(_truth(of(arg), "and") for arg in c.args)
        case "or":
            return any(_truth(of(arg), "or") for arg in c.args)
        case "eq":
            return bool(of(c.args[0]) == of(c.args[1]))
        case "ne":
            return bool(of(c.args[0]) != of(c.args[1]))
        case "in":
            return _contains(of(c.args[1]), of(c.args[0]))
        case "len":
            return _length(of(c.args[0]))
        case _:
            return _ordered(c.op, of(c.args[0]), of(c.args[1]))


def _lookup(value: Any, names: list[str]) -> Any:
    for name in names:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _truth(value: Any, op: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConditionError(f"`{op}` takes true or false, got {_shown(value)}")
    return value


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        if not isinstance(item, str):
            raise ConditionError(f"`in` a string takes a string, got {_shown(item)}")
        return item in container
    if isinstance(container, list | tuple | Mapping):
        return item in container
    raise ConditionError(f"`in` takes a list, a map or a string, got {_shown(container)}")


def _length(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise ConditionError(f"`len` takes a list, a map or a string, got {_shown(value)}")


def _ordered(op: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    numbers = (int, float)
    comparable = (
        isinstance(left, numbers)
        and isinstance(right, numbers)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    ) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        raise ConditionError(f"cannot order {_shown(left)} and {_shown(right)}")
    return _ORDER[op](left, right)


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


class _Comparable:
    """Something a condition compares: the comparison operators build `Condition`s."""

    def _as_condition(self) -> Condition:
        raise NotImplementedError

    def _compare(self, op: Any, other: object) -> Condition:
        return Condition(op=op, args=(self._as_condition(), _operand(other)))

    def __eq__(self, other: object) -> Condition:  # type: ignore[override]
        return self._compare("eq", other)

    def __ne__(self, other: object) -> Condition:  # type: ignore[override]
        return self._compare("ne", other)

    def __lt__(self, other: object) -> Condition:
        return self._compare("lt", other)

    def __le__(self, other: object) -> Condition:
        return self._compare("le", other)

    def __gt__(self, other: object) -> Condition:
        return self._compare("gt", other)

    def __ge__(self, other: object) -> Condition:
        return self._compare("ge", other)

    def __hash__(self) -> int:
        return hash(self._as_condition().model_dump_json())


class Ref(_Comparable):
    """A value a condition reads, for plans built in Python: `when.input.confidence < 0.8`,
    `when.classify.label.is_in(["spam", "unsure"])`, `when.extract.pages.length() > 3`.
    Combine conditions with `all_of`, `any_of` and `negate`."""

    def __init__(self, *path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):
            raise AttributeError(name)
        return Ref(*self._path, name)

    def _as_condition(self) -> Condition:
        if not self._path:
            raise ValueError("name `input` or a stage first: `when.input.<field>`")
        return Condition(op="field", path=self._path)

    def is_in(self, values: object) -> Condition:
        """The value is an element of `values` (a list, or a `Ref` to a list or string)."""
        return self._compare("in", values)

    def length(self) -> LengthRef:
        """The length of the list, map or string."""
        return LengthRef(Condition(op="len", args=(self._as_condition(),)))

    def truthy(self) -> Condition:
        """The value is `true` (for a bool field used as a condition on its own)."""
        return self._compare("eq", True)


class LengthRef(_Comparable):
    """`len(...)` of a value, to compare."""

    def __init__(self, condition: Condition) -> None:
        self._condition = condition

    def _as_condition(self) -> Condition:
        return self._condition


def _operand(value: object) -> Condition:
    if isinstance(value, _Comparable):
        return value._as_condition()
    if isinstance(value, Condition):
        return value
    return Condition(op="literal", value=value)


def all_of(*conditions: Condition) -> Condition:
    """Every one of `conditions` holds."""
    return conditions[0] if len(conditions) == 1 else Condition(op="and", args=conditions)


def any_of(*conditions: Condition) -> Condition:
    """At least one of `conditions` holds."""
    return conditions[0] if len(conditions) == 1 else Condition(op="or", args=conditions)


def negate(condition: Condition) -> Condition:
    """`condition` does not hold."""
    return Condition(op="not", args=(condition,))


when = Ref()
"""The root of conditions built in Python: `when.input.<field>` or `when.<stage>.<field>`."""
