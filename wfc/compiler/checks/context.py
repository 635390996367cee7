"""State shared by the check passes: diagnostics so far, symbols, and what is broken.

A pass that reports a problem on a node marks it `broken`; later passes skip
broken nodes so one mistake produces one diagnostic, not a cascade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from wfc.compiler import ast, model
from wfc.compiler.diagnostics import Diagnostic, Label, Severity
from wfc.compiler.loader import Program
from wfc.compiler.source import Span
from wfc.plan import (
    DEFAULT_MAP_AT_MOST,
    ConcurrencyLimit,
    Condition,
    RateLimit,
    ScheduleSpec,
    SignalTimeout,
    SignalWait,
    SleepSpec,
)


@dataclass(slots=True, kw_only=True)
class StageSettings:
    """A stage's policies in milliseconds, defaults first, overwritten by what the stage says."""

    max_attempts: int = 3
    backoff_initial_ms: int = 1000
    backoff_multiplier: float = 2.0
    backoff_max_ms: int = 60_000
    non_retryable: tuple[str, ...] = ()
    timeout_ms: int | None = None
    poll_interval_ms: int | None = None
    poll_max_wait_ms: int | None = None
    priority: int | None = None
    queue: str | None = None
    concurrency: ConcurrencyLimit | None = None
    rate: RateLimit | None = None


@dataclass(slots=True, kw_only=True)
class MapFacts:
    """A stage's `map`: its settings, what its items are and what it was declared to take."""

    node: ast.Map
    at_most: int = DEFAULT_MAP_AT_MOST
    on_item_failure: str = "fail"
    # The stage's declared `input` (a record, or a primitive or enum named by `input T`).
    declared: model.Type | None = None
    # The type of one item, once the path is checked.
    item: model.Type | None = None


@dataclass(slots=True, kw_only=True)
class StageFacts:
    """What the passes learn about one stage, filled in pass by pass."""

    node: ast.Stage
    input: model.Record | None = None
    # "flow" | "stage" | "none" | "item" (a mapped stage).
    input_source: str = "none"
    input_from: str | None = None
    output: model.Record | None = None
    config: model.Record | None = None
    group: int | None = None
    settings: StageSettings = field(default_factory=StageSettings)
    when: Condition | None = None
    map: MapFacts | None = None
    # A built-in stage (`sleep …` or `wait for …`): what it is, once checked.
    builtin: bool = False
    sleep: SleepSpec | None = None
    wait_for: SignalWait | None = None

    @property
    def may_be_null(self) -> bool:
        """A wait that times out into null (`on timeout continue`)."""
        return self.wait_for is not None and self.wait_for.on_timeout is SignalTimeout.CONTINUE

    child: model.ChildModel | None = None  # `runs <workflow>` (checks/children.py)

    def gathered(self) -> model.Type | None:
        """What the stage hands on: its output, or, for a mapped stage, the list of its
        items' outputs (of `ItemResult`s with `on failure continue`)."""
        if self.output is None or self.map is None:
            return self.output
        if self.map.on_item_failure != "continue":
            return model.ListOf(item=self.output)
        return model.ListOf(item=item_result(self.output))


def item_result(output: model.Record) -> model.Record:
    """The record one item of a mapped stage with `on failure continue` gives:
    `ItemResult[XOutput]` in generated code, `{"index", "output", "error"}` in JSON."""
    return model.Record(
        name=f"ItemResult[{output.name}]",
        fields=(
            model.RecordField(name="index", type=model.Primitive(name="int")),
            model.RecordField(name="output", type=model.Optional(inner=output)),
            model.RecordField(name="error", type=model.Optional(inner=model.Primitive(name="str"))),
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipCause:
    """Why a stage may be skipped: the `when` of `stage` (itself, or one it depends on)."""

    stage: str
    span: Span


@dataclass(slots=True, kw_only=True)
class Analysis:
    """One workflow under check."""

    program: Program
    workflow: ast.Workflow | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    enums: dict[str, model.EnumType] = field(default_factory=dict)
    type_decls: dict[str, ast.TypeDecl] = field(default_factory=dict)
    records: dict[str, model.Record] = field(default_factory=dict)
    declared_at: dict[str, Span] = field(default_factory=dict)
    stages: dict[str, StageFacts] = field(default_factory=dict)
    groups: list[tuple[str, ...]] = field(default_factory=list)
    workflow_input: model.Record | None = None
    workflow_output: model.Record | None = None
    broken: set[str] = field(default_factory=set)
    skippable: dict[str, SkipCause] = field(default_factory=dict)
    workflow_queue: str | None = None
    schedules: list[ScheduleSpec] = field(default_factory=list)
    signals: dict[str, model.SignalModel] = field(default_factory=dict)
    child_inputs: dict[str, model.Record] = field(default_factory=dict)  # by child stage

    def error(
        self,
        code: str,
        message: str,
        span: Span | None,
        *,
        label: str = "",
        labels: Iterable[Label] = (),
        help: str | None = None,
        notes: Iterable[str] = (),
        severity: Severity = Severity.ERROR,
    ) -> None:
        """Record a diagnostic."""
        self.diagnostics.append(
            Diagnostic(
                code=code,
                message=message,
                span=span,
                severity=severity,
                label=label,
                labels=tuple(labels),
                help=help,
                notes=tuple(notes),
            )
        )

    def warning(self, code: str, message: str, span: Span | None, **kwargs: object) -> None:
        """Record a warning: shown, but `wfc check` still exits 0."""
        self.error(code, message, span, severity=Severity.WARNING, **kwargs)  # type: ignore[arg-type]

    @property
    def has_errors(self) -> bool:
        """Any error (not warning) so far."""
        return any(d.severity is Severity.ERROR for d in self.diagnostics)
