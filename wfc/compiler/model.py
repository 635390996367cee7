"""The checked model: names resolved, durations in milliseconds, types as values.

The checker builds this from the AST; lowering (→ Plan) and code generation
read only this. Types are plain values so that structural compatibility is a
function of two types (`assignable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wfc.compiler import ast
from wfc.plan import (
    ConcurrencyLimit,
    Condition,
    RateLimit,
    ScheduleSpec,
    SignalTimeout,
    SignalWait,
    SleepSpec,
)

PRIMITIVES = ("str", "int", "float", "bool", "datetime", "date", "url", "email", "json", "blob")


@dataclass(frozen=True, slots=True, kw_only=True)
class Primitive:
    """A built-in scalar type."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListOf:
    """`list[T]`."""

    item: Type


@dataclass(frozen=True, slots=True, kw_only=True)
class MapOf:
    """`map[T]`."""

    value: Type


@dataclass(frozen=True, slots=True, kw_only=True)
class Optional:
    """`T?`."""

    inner: Type


@dataclass(frozen=True, slots=True, kw_only=True)
class EnumType:
    """A declared enum; identity is its name (names are unique across imports)."""

    name: str
    members: tuple[str, ...]
    doc: str | None = None
    decl: ast.EnumDecl | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordField:
    """A record field with its constraints (`ge`, `max_len`, …) and default."""

    name: str
    type: Type
    constraints: tuple[tuple[str, float | int | str], ...] = ()
    has_default: bool = False
    default: Any = None
    doc: str | None = None
    node: ast.Field | None = field(default=None, compare=False, repr=False)

    @property
    def required(self) -> bool:
        """A field must be supplied unless it has a default or may be null."""
        return not self.has_default and not isinstance(self.type, Optional)


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A record type. `name` is the declared name or a synthesised one (`ExtractOutput`)."""

    name: str
    fields: tuple[RecordField, ...]
    doc: str | None = None
    declared: bool = False
    node: ast.TypeDecl | ast.RecordBody | None = field(default=None, compare=False, repr=False)

    def field_named(self, name: str) -> RecordField | None:
        """The field with this name, if any."""
        return next((f for f in self.fields if f.name == name), None)


Type = Primitive | ListOf | MapOf | Optional | EnumType | Record


def describe(t: Type) -> str:
    """A type as the user would write it."""
    match t:
        case Primitive(name=name) | EnumType(name=name) | Record(name=name):
            return name
        case ListOf(item=item):
            return f"list[{describe(item)}]"
        case MapOf(value=value):
            return f"map[{describe(value)}]"
        case Optional(inner=inner):
            return f"{describe(inner)}?"


def assignable(source: Type, target: Type) -> bool:
    """Can a value of `source` be used where `target` is expected (structurally)?"""
    if isinstance(target, Primitive) and target.name == "json":
        return True
    if isinstance(target, Optional):
        inner = source.inner if isinstance(source, Optional) else source
        return assignable(inner, target.inner)
    match source:
        case Optional():
            return False
        case Primitive(name=name):
            return isinstance(target, Primitive) and (
                name == target.name
                or (name == "int" and target.name == "float")
                or (name in ("url", "email") and target.name == "str")
            )
        case EnumType():
            return source == target or target == Primitive(name="str")
        case ListOf(item=item):
            return isinstance(target, ListOf) and assignable(item, target.item)
        case MapOf(value=value):
            return isinstance(target, MapOf) and assignable(value, target.value)
        case Record():
            return isinstance(target, Record) and not missing_fields(source, target)
    return False


def missing_fields(source: Record, target: Record) -> list[str]:
    """Target fields that the source does not provide with an assignable type."""
    problems = []
    for tf in target.fields:
        sf = source.field_named(tf.name)
        if sf is None:
            if tf.required:
                problems.append(tf.name)
        elif not assignable(sf.type, tf.type):
            problems.append(tf.name)
    return problems


@dataclass(frozen=True, slots=True, kw_only=True)
class RootInput:
    """The input of a mapped stage whose items are not records (`str`, an enum, a list):
    one item, generated as `class XInput(RootModel[T])`."""

    name: str
    item: Type


@dataclass(frozen=True, slots=True, kw_only=True)
class MapModel:
    """A checked `map`: the path of the list, how many items run at once, the failure
    policy (`fail` or `continue`) and the type of one item."""

    over: tuple[str, ...]
    at_most: int
    on_item_failure: str
    item: Type


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildModel:
    """A child-workflow stage's workflow and, as its plan gives them, that workflow's
    input and output schemas (the stage's own, in the parent's plan)."""

    workflow_id: str
    input_schema: dict[str, Any] = field(compare=False, repr=False)
    output_schema: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageModel:
    """A checked stage."""

    id: str
    title: str
    description: str | None
    is_async: bool
    input_source: str  # "flow" | "stage" | "none" | "item"
    input_from: str | None
    input: Record | RootInput  # a `RootInput` only for a mapped stage
    output: Record
    config: Record
    needs: tuple[str, ...]
    optional_needs: tuple[str, ...] = ()  # needs written `x?`: may have been skipped
    when: Condition | None = None  # run only when this holds, else SKIPPED
    map: MapModel | None = None  # run once per item of a list
    retry_max_attempts: int = 3
    backoff_initial_ms: int = 1000
    backoff_multiplier: float = 2.0
    backoff_max_ms: int = 60_000
    non_retryable: tuple[str, ...] = ()
    timeout_ms: int | None = None
    poll_interval_ms: int | None = None
    poll_max_wait_ms: int | None = None
    priority: int | None = None
    queue: str | None = None  # None: the workflow's queue
    concurrency: ConcurrencyLimit | None = None
    rate: RateLimit | None = None
    # A built-in stage: a durable sleep or a wait for a signal (no user class implements it).
    sleep: SleepSpec | None = None
    wait_for: SignalWait | None = None
    child: ChildModel | None = None  # `runs <workflow>`: a built-in child-workflow stage
    node: ast.Stage | None = field(default=None, compare=False, repr=False)

    @property
    def builtin(self) -> bool:
        """Whether the runtime implements this stage: no stub, no class, no context."""
        return self.sleep is not None or self.wait_for is not None

    @property
    def may_be_null(self) -> bool:
        """A wait that times out into null (`on timeout continue`): its readers take it as optional."""
        return self.wait_for is not None and self.wait_for.on_timeout is SignalTimeout.CONTINUE


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalModel:
    """A checked `signal`: its name and its payload's record (`ApprovePayload`, or a declared
    type), which lowering turns into the plan's `SignalSpec` and codegen into a model."""

    name: str
    payload: Record
    doc: str | None = None
    node: ast.Signal | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowModel:
    """A checked workflow, ready to lower and render."""

    id: str
    name: str
    description: str | None
    source_name: str
    input: Record
    output: Record
    stages: tuple[StageModel, ...]
    groups: tuple[tuple[str, ...], ...]
    enums: tuple[EnumType, ...]
    records: tuple[Record, ...]  # declared types used anywhere, in dependency order
    queue: str | None = None  # None: the `default` queue
    schedules: tuple[ScheduleSpec, ...] = ()
    signals: tuple[SignalModel, ...] = ()
