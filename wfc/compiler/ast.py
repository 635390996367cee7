"""The AST: what a `.wf` (or `.wf.yaml`) file says, with a span on every node.

Nodes are frozen, keyword-only dataclasses. Spans do not take part in
equality, so two parses of equivalent text compare equal whatever the layout,
which is what the printer round-trip test relies on. Both front ends build
these nodes; nothing here validates (that is the checker's job).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from wfc.compiler.source import Span

JsonLiteral = str | int | float | bool | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Name:
    """An identifier as written, with where it was written."""

    value: str
    span: Span = field(compare=False, repr=False)


# -- values (defaults) ---------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Literal_:
    """A string, number, boolean or null literal."""

    value: JsonLiteral
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnumRef:
    """A bare name used as a value: an enum member."""

    name: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListValue:
    """`[a, b, c]`."""

    items: tuple[Value, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectValue:
    """`{key: value, ...}`."""

    entries: tuple[tuple[str, Value], ...]
    span: Span = field(compare=False, repr=False)


Value = Literal_ | EnumRef | ListValue | ObjectValue


# -- types ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedType:
    """A primitive (`str`, `int`, …) or a declared type or enum, by name."""

    name: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListType:
    """`list[T]`."""

    item: TypeExpr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class MapType:
    """`map[T]`: string keys, values of T."""

    value: TypeExpr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionalType:
    """`T?`: the value may be null, and the field may be left out."""

    inner: NamedType | ListType | MapType
    span: Span = field(compare=False, repr=False)


TypeExpr = NamedType | ListType | MapType | OptionalType


@dataclass(frozen=True, slots=True, kw_only=True)
class Constraint:
    """One constraint in `( … )`: a numeric or length bound, or a pattern.

    `kind` is `ge`, `gt`, `le`, `lt` (on values), `min_len`/`max_len` and
    `len_gt`/`len_lt` (on lengths), or `pattern`.
    """

    kind: Literal["ge", "gt", "le", "lt", "min_len", "max_len", "len_gt", "len_lt", "pattern"]
    value: float | int | str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """`name: type (constraints) = default`, with its `##` doc."""

    name: Name
    type: TypeExpr
    constraints: tuple[Constraint, ...] = ()
    default: Value | None = None
    doc: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordBody:
    """`{ field, field, … }`: an inline record."""

    fields: tuple[Field, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeRef:
    """A record given by the name of a declared `type`."""

    name: str
    span: Span = field(compare=False, repr=False)


RecordSpec = RecordBody | TypeRef


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeDecl:
    """`type Name { … }`."""

    name: Name
    body: RecordBody
    doc: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnumMember:
    """One member of an enum, with its doc."""

    name: Name
    doc: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnumDecl:
    """`enum Name { a, b, c }`."""

    name: Name
    members: tuple[EnumMember, ...]
    doc: str | None = None
    span: Span = field(compare=False, repr=False)


# -- conditions (`when`) ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DottedName:
    """`input.document.title`, `classify.label` or `Label.spam`.

    The parser cannot tell a field path from an enum member (both are names
    joined by dots); the checker decides by what the first name is.
    """

    parts: tuple[Name, ...]
    span: Span = field(compare=False, repr=False)

    @property
    def text(self) -> str:
        """The name as written, dots and all."""
        return ".".join(p.value for p in self.parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListExpr:
    """`[a, b, c]` in a condition: literals or enum members, for `in`."""

    items: tuple[Expr, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Not:
    """`not x`."""

    operand: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Logical:
    """`a and b and c` or `a or b`: one node per run of the same operator, as written."""

    op: Literal["and", "or"]
    operands: tuple[Expr, ...]
    span: Span = field(compare=False, repr=False)


CompareOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Compare:
    """`left <op> right`: one comparison; they do not chain."""

    op: CompareOp
    left: Expr
    right: Expr
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Len:
    """`len(x)`: the length of a list, map or string."""

    operand: Expr
    span: Span = field(compare=False, repr=False)


Expr = DottedName | Literal_ | ListExpr | Not | Logical | Compare | Len


# -- stages --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InputFrom:
    """`input from <stage>`: the stage's input is another stage's output."""

    stage: Name
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputNone:
    """`input none`: the stage reads only its dependencies."""

    span: Span = field(compare=False, repr=False)


StageInput = RecordBody | TypeRef | InputFrom | InputNone


@dataclass(frozen=True, slots=True, kw_only=True)
class Duration:
    """A duration as written (`90s`, `1h30m`); the checker turns it into milliseconds."""

    text: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """`backoff exponential 1s x2 max 1m`."""

    kind: Name
    initial: Duration
    multiplier: Literal_ | None = None
    max: Duration | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """`retry 3 times, backoff …, never on ErrorName, …`."""

    times: Literal_
    backoff: Backoff | None = None
    never_on: tuple[Name, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Poll:
    """`poll every 1m, give up after 24h`."""

    every: Duration
    give_up_after: Duration | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AiPreset:
    """`ai "model", temperature 0.2, max tokens 500`: config fields for model calls."""

    model: Literal_
    temperature: Literal_ | None = None
    max_tokens: Literal_ | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Map:
    """`map split.pages, at most 16 at once, on failure continue`: run once per item.

    `over` is the path of the list, `input.<field>…` or `<stage>.<field>…`. Each
    option is kept every time it is given, so the checker can report repeats.
    """

    over: DottedName
    at_most: tuple[Literal_, ...] = ()
    on_failure: tuple[Name, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Concurrency:
    """`concurrency 2 per input.customer_id`: at most `max` executions at once, fleet-wide,
    for each value at `per` (a path from `input`) when it is given."""

    max: Literal_
    per: DottedName | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """`rate 50 per minute shared "openai"`: at most `max` starts per `unit` (a name the
    checker reads: `second`, `minute`, `hour`, `day`), from a budget of its own or the
    `shared` one."""

    max: Literal_
    unit: Name
    shared: Literal_ | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sleep:
    """`sleep 1h` (a `duration`) or `sleep until input.publish_at` (an `until` path to a
    datetime, from `input` or an earlier stage): a built-in stage that waits."""

    duration: Duration | None = None
    until: DottedName | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wait:
    """`wait for approve, timeout 2d, on timeout continue`: a built-in stage that waits for
    a signal. Each option is kept every time it is given, so the checker can report repeats;
    the policy is a name the checker reads (`fail` or `continue`)."""

    signal: Name
    timeouts: tuple[Duration, ...] = ()
    on_timeout: tuple[Name, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """A stage. Settings that may appear at most once are gathered by the
    transformer into the `*_all` tuples so the checker can report repeats."""

    name: Name
    is_async: bool = False
    title: str | None = None
    doc: str | None = None
    descriptions: tuple[Literal_, ...] = ()
    inputs: tuple[StageInput, ...] = ()
    outputs: tuple[RecordSpec, ...] = ()
    configs: tuple[RecordSpec, ...] = ()
    needs: tuple[Name, ...] = ()
    # The needs written with `?` (each is in `needs` too); the span covers the `?`.
    optional_needs: tuple[Name, ...] = ()
    # Each `when` given (one is allowed; the checker reports repeats).
    conditions: tuple[Expr, ...] = ()
    # Each `map` given (one is allowed; the checker reports repeats).
    maps: tuple[Map, ...] = ()
    retries: tuple[Retry, ...] = ()
    timeouts: tuple[Duration, ...] = ()
    polls: tuple[Poll, ...] = ()
    priorities: tuple[Literal_, ...] = ()
    ai_presets: tuple[AiPreset, ...] = ()
    queues: tuple[Literal_, ...] = ()
    concurrencies: tuple[Concurrency, ...] = ()
    rates: tuple[Rate, ...] = ()
    # Each `sleep` and `wait for` given (a built-in stage has one of them, once).
    sleeps: tuple[Sleep, ...] = ()
    waits: tuple[Wait, ...] = ()
    # `runs <workflow>`: the stage runs that workflow as a child run.
    runs: Name | None = None
    async_keyword: Span | None = field(default=None, compare=False, repr=False)
    span: Span = field(compare=False, repr=False)


# -- workflow ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowStep:
    """One step of the flow: a single stage or a parallel group `[a, b]`."""

    stages: tuple[Name, ...]
    parallel: bool = False
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """`flow a -> [b, c] -> d`."""

    steps: tuple[FlowStep, ...]
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """`schedule nightly "0 6 * * *" in "Europe/Paris" { … }`: a run on each tick.

    The lines of the block are kept every time they are given, so the checker can
    report repeats; the policies are names the checker reads (`catch up latest`,
    `overlap skip`).
    """

    name: Name
    cron: Literal_
    timezone: Literal_ | None = None
    inputs: tuple[ObjectValue, ...] = ()
    catch_ups: tuple[Name, ...] = ()
    overlaps: tuple[Name, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """`signal approve { approved: bool }`: a message a run can be sent, with its payload's
    record (None: an empty payload)."""

    name: Name
    payload: RecordSpec | None = None
    doc: str | None = None
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A workflow; repeated one-off items are kept so the checker can report repeats."""

    id: Name
    doc: str | None = None
    names: tuple[Literal_, ...] = ()
    descriptions: tuple[Literal_, ...] = ()
    types: tuple[TypeDecl, ...] = ()
    enums: tuple[EnumDecl, ...] = ()
    inputs: tuple[RecordSpec, ...] = ()
    outputs: tuple[RecordSpec, ...] = ()
    stages: tuple[Stage, ...] = ()
    flows: tuple[Flow, ...] = ()
    queues: tuple[Literal_, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    signals: tuple[Signal, ...] = ()
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Import:
    """`import "common.wf"`."""

    path: str
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    """One source file: its imports, shared types and enums, and workflows."""

    imports: tuple[Import, ...] = ()
    types: tuple[TypeDecl, ...] = ()
    enums: tuple[EnumDecl, ...] = ()
    workflows: tuple[Workflow, ...] = ()
    span: Span = field(compare=False, repr=False)
