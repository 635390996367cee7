"""The Plan IR of the stages the runtime implements itself: durable sleeps and signal waits
(and the checks every built-in shares, child-workflow stages' too: `wfc.plan_children`).

Kept beside `wfc.plan` (which re-exports them) so that module stays one screenful of
the core IR. A built-in stage is a `PlanStage` whose `implementation` is
`wfc:sleep` or `wfc:signal` and which carries a `SleepSpec` or a `SignalWait`; no
user class implements it, and the kernel runs it without holding a worker: its
timer is a job queued to become due when the sleep ends (or the wait times out),
and a signal completes the waiting stage in the transaction that delivers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wfc.plan_children import CHILD_IMPLEMENTATION

JsonSchema = dict[str, Any]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_EMPTY_OBJECT: JsonSchema = {"type": "object", "properties": {}, "additionalProperties": False}

SLEEP_IMPLEMENTATION = "wfc:sleep"
"""The `implementation` of a built-in sleep stage (`PlanStage.sleep`): no user class."""

SIGNAL_IMPLEMENTATION = "wfc:signal"
"""The `implementation` of a built-in signal stage (`PlanStage.wait_for`): no user class."""

BUILTIN_IMPLEMENTATIONS = frozenset(
    {SLEEP_IMPLEMENTATION, SIGNAL_IMPLEMENTATION, CHILD_IMPLEMENTATION}
)


class SignalSpec(_Frozen):
    """A signal the workflow declares: a named message sent to one of its runs from outside
    (`run.signal`), whose payload must fit `payload_schema`."""

    name: str = Field(min_length=1, max_length=200)
    payload_schema: JsonSchema = Field(default_factory=lambda: dict(_EMPTY_OBJECT))


class SleepSpec(_Frozen):
    """A built-in stage that waits, holding no worker: for `duration_ms` after it opens, or
    until the instant at `until` (a path like a condition's `field`: `input.x` or
    `<earlier stage>.field`, to an ISO-8601 datetime string; one without a zone is UTC).
    Exactly one of the two. Its output is `{"woke_at": <ISO-8601 instant>}`."""

    duration_ms: int | None = Field(default=None, ge=0)
    until: tuple[str, ...] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.duration_ms is None) == (self.until is None):
            raise ValueError("a sleep has exactly one of `duration_ms` and `until`")
        return self


class SignalTimeout(StrEnum):
    """What a signal stage does when its timeout passes first.

    `fail`: the stage fails (not retried) and so does the run. `continue`: the stage
    completes with the output null; stages that need it list it in `optional_needs`.
    """

    FAIL = "fail"
    CONTINUE = "continue"


class SignalWait(_Frozen):
    """A built-in stage that waits for the signal `signal` (declared in `Plan.signals`) and
    outputs its payload; with `timeout_ms`, for at most that long after it opens."""

    signal: str
    timeout_ms: int | None = Field(default=None, gt=0)
    on_timeout: SignalTimeout = SignalTimeout.FAIL


class _Stage(Protocol):
    """What these checks read of a `wfc.plan.PlanStage` (which imports this module)."""

    @property
    def id(self) -> str: ...
    @property
    def implementation(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def sleep(self) -> SleepSpec | None: ...
    @property
    def wait_for(self) -> SignalWait | None: ...
    @property
    def child(self) -> object: ...
    @property
    def map(self) -> object: ...
    @property
    def poll(self) -> object: ...
    @property
    def concurrency(self) -> object: ...
    @property
    def rate(self) -> object: ...
    @property
    def needs(self) -> tuple[str, ...]: ...
    @property
    def optional_needs(self) -> tuple[str, ...]: ...


def builtin_problems(stage: _Stage) -> str | None:
    """What is wrong with `stage` as a built-in (or as a stage naming a built-in
    implementation without its spec), or None."""
    specs = [s for s in (stage.sleep, stage.wait_for, stage.child) if s is not None]
    if len(specs) > 1:
        return "a stage sleeps, waits for a signal or runs a child workflow: one of them"
    if stage.sleep is not None:
        expected = SLEEP_IMPLEMENTATION
    elif stage.wait_for is not None:
        expected = SIGNAL_IMPLEMENTATION
    elif stage.child is not None:
        expected = CHILD_IMPLEMENTATION
    elif stage.implementation in BUILTIN_IMPLEMENTATIONS:
        return f"{stage.implementation!r} needs `sleep`, `wait_for` or `child`"
    else:
        return None
    if stage.implementation != expected:
        return f"a built-in stage's implementation is {expected!r}"
    stray = [
        name
        for name, value in (
            ("map", stage.map),
            ("poll", stage.poll),
            ("concurrency", stage.concurrency),
            ("rate", stage.rate),
        )
        if value is not None
    ]
    if stage.kind != "sync":
        stray.append("async kind")
    return f"a built-in stage has no {', '.join(stray)}" if stray else None


def signal_problem(signals: Sequence[SignalSpec], stages: Sequence[_Stage]) -> str | None:
    """Signal names are unique, every wait names a declared one, and a stage that needs a
    wait that may time out into null takes it as an optional need; else what is wrong."""
    names = [signal.name for signal in signals]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return f"duplicate signal names: {', '.join(twice)}"
    may_be_null = set()
    for stage in stages:
        if stage.wait_for is None:
            continue
        if stage.wait_for.signal not in names:
            return (
                f"stage {stage.id!r} waits for signal {stage.wait_for.signal!r}, which the "
                f"workflow does not declare (signals: {', '.join(names) or 'none'})"
            )
        if stage.wait_for.on_timeout is SignalTimeout.CONTINUE:
            may_be_null.add(stage.id)
    for stage in stages:
        required = sorted((set(stage.needs) & may_be_null) - set(stage.optional_needs))
        if required:
            return (
                f"stage {stage.id!r} needs {', '.join(required)}, whose output is null when "
                "the wait times out: list it in optional_needs"
            )
    return None
