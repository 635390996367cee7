"""The Plan IR: the one contract between the compiler and the runtime.

A `Plan` is what the kernel executes. The compiler lowers a checked `.wf` file
to one, and the Python builder produces the same shape, so the runtime never
needs to know where a workflow came from. Plans are plain JSON on disk
(`plan.json`); `Plan.to_json()` is canonical (sorted keys, fixed indentation)
so that `Plan.from_json(text).to_json() == text` byte for byte, and the
`fingerprint` is the sha256 of the canonical compact form of everything else,
which a run stores to know which version of its workflow it was started with.

Durations are integer milliseconds: JSON has no duration type and integers
round-trip exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wfc.plan_children import CHILD_IMPLEMENTATION as CHILD_IMPLEMENTATION
from wfc.plan_children import MAX_CHILD_DEPTH as MAX_CHILD_DEPTH
from wfc.plan_children import ChildWorkflow as ChildWorkflow
from wfc.plan_json import indented_json, indented_json_of_sorted, without_unused
from wfc.plan_waits import BUILTIN_IMPLEMENTATIONS as BUILTIN_IMPLEMENTATIONS
from wfc.plan_waits import SIGNAL_IMPLEMENTATION as SIGNAL_IMPLEMENTATION
from wfc.plan_waits import SLEEP_IMPLEMENTATION as SLEEP_IMPLEMENTATION
from wfc.plan_waits import SignalSpec as SignalSpec
from wfc.plan_waits import SignalTimeout as SignalTimeout
from wfc.plan_waits import SignalWait as SignalWait
from wfc.plan_waits import SleepSpec as SleepSpec
from wfc.plan_waits import builtin_problems, signal_problem

PLAN_VERSION: Literal[1] = 1
"""Bumped whenever a change to these models would break an older runtime."""

JsonSchema = dict[str, Any]

EMPTY_OBJECT_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {},
    "additionalProperties": False,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageKind(StrEnum):
    """`sync` stages return their output; `async` stages may suspend and are polled."""

    SYNC = "sync"
    ASYNC = "async"


class InputSource(StrEnum):
    """Where a stage's input comes from at run time.

    `flow`: the output of the previous execution group (the workflow input for
    the first group); a parallel group's output is an object keyed by stage id.
    `stage`: the output of the stage named in `input_from`.
    `none`: the empty object; the stage reads its dependencies instead.
    `item`: one item of the list the stage's `map` runs over (the stage runs once per item).
    """

    FLOW = "flow"
    STAGE = "stage"
    NONE = "none"
    ITEM = "item"


class RetryPolicy(_Frozen):
    """How often a failing stage is tried and how long to wait in between.

    The delay before attempt `n + 1` is
    `min(backoff_initial_ms * backoff_multiplier ** (n - 1), backoff_max_ms)`.
    Errors whose class name is in `non_retryable` fail the stage at once.
    """

    max_attempts: int = Field(default=3, ge=1)
    backoff_initial_ms: int = Field(default=1000, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1.0)
    backoff_max_ms: int = Field(default=60_000, ge=0)
    non_retryable: tuple[str, ...] = ()

    def delay_ms(self, failed_attempt: int) -> int:
        """Milliseconds to wait after the `failed_attempt`-th attempt (1-based) failed."""
        raw = self.backoff_initial_ms * self.backoff_multiplier ** max(failed_attempt - 1, 0)
        return int(min(raw, self.backoff_max_ms))


class PollPolicy(_Frozen):
    """How an async stage that suspended is polled: every `interval_ms`, for at most `max_wait_ms`."""

    interval_ms: int = Field(default=30_000, gt=0)
    max_wait_ms: int = Field(default=24 * 3_600_000, gt=0)


ConditionOp = Literal[
    "field", "literal", "not", "and", "or", "eq", "ne", "lt", "le", "gt", "ge", "in", "len"
]


class Condition(_Frozen):
    """A stage's `when`, as the kernel evaluates it: a small expression tree.

    - `field`: the value at `path`, whose first segment is `input` (the workflow
      input) or the id of an earlier stage (its output), then field names;
      missing (a skipped stage, an absent optional field) reads as null.
    - `literal`: `value`, any JSON value (an enum member is its string).
    - `not` (one arg), `and`/`or` (two or more args): on truth values.
    - `eq`, `ne`, `lt`, `le`, `gt`, `ge` (two args): comparisons; an order
      comparison with null is false.
    - `in` (two args): the first is an element of the second (a list, or a
      substring of a string); false when the second is null.
    - `len` (one arg): the length of a list, map or string; 0 for null.

    The compiler checks a condition's types against the schemas; a plan built
    by hand is checked when it is evaluated, and a condition that cannot be
    evaluated fails its stage with the reason.
    """

    op: ConditionOp
    args: tuple[Condition, ...] = ()
    path: tuple[str, ...] = ()
    value: Any = None

    @model_validator(mode="after")
    def _arity(self) -> Self:
        arity = {"field": 0, "literal": 0, "not": 1, "len": 1}.get(self.op, 2)
        if self.op in ("and", "or"):
            if len(self.args) < 2:
                raise ValueError(f"`{self.op}` takes two or more operands")
        elif len(self.args) != arity:
            raise ValueError(f"`{self.op}` takes {arity} operand(s), got {len(self.args)}")
        if (self.op == "field") != bool(self.path):
            raise ValueError("a `field` has a path, and only a `field` has one")
        return self

    def roots(self) -> set[str]:
        """The first path segments this condition reads (`input`, or stage ids)."""
        found = {self.path[0]} if self.op == "field" else set()
        for arg in self.args:
            found |= arg.roots()
        return found


class ItemFailure(StrEnum):
    """What a mapped stage does when one item fails for good (its retries exhausted).

    `fail`: the stage fails; items not started are cancelled, running ones are
    discarded when they finish. `continue`: the other items go on, and the
    stage completes with one result per item, each an output or an error.
    """

    FAIL = "fail"
    CONTINUE = "continue"


DEFAULT_QUEUE = "default"
"""The queue of stages and workflows that name none, and of workers started without `--queue`."""

DEFAULT_MAP_AT_MOST = 10
"""Items of one mapped stage of one run that run at once when the plan does not say."""

MAP_AT_MOST_LIMIT = 1000


class MapSpec(_Frozen):
    """A stage's `map`: it runs once per item of the list at `over`.

    `over` is a path like a condition's `field`: `input` (the workflow input) or
    the id of an earlier stage (its output), then field names; the value there
    is a list. Each item is the input of one execution, with its own job,
    attempts, retries, timeout and lease. At most `at_most` items of one run's
    map run at once; the next is queued as one finishes. The stage's output is
    the list of the items' outputs in item order (with `continue`, one
    `{"index", "output", "error"}` result per item).
    """

    over: tuple[str, ...] = Field(min_length=1)
    at_most: int = Field(default=DEFAULT_MAP_AT_MOST, ge=1, le=MAP_AT_MOST_LIMIT)
    on_item_failure: ItemFailure = ItemFailure.FAIL


class ConcurrencyLimit(_Frozen):
    """A stage's `concurrency N [per input.field]`: at most `max` executions of it at once
    across every worker of every machine sharing the database.

    With `per` (a path from `input`, like a condition's `field`), the bound holds for
    each value found there separately: `concurrency 2 per input.customer_id` lets two
    executions per customer run at once. Every execution counts, items of a map included.
    """

    max: int = Field(ge=1)
    per: tuple[str, ...] = ()


class RateLimit(_Frozen):
    """A stage's `rate N per minute [shared "name"]`: at most `max` executions start in
    any window of `window_ms`, across the fleet.

    Stages that name the same `shared` limit (in any workflow) draw from one budget: the
    way to hold every call to one provider under its quota. Without a name, the
    limit is the stage's own.
    """

    max: int = Field(ge=1)
    window_ms: int = Field(default=60_000, gt=0)
    shared: str | None = None


class CatchUp(StrEnum):
    """Which ticks a schedule fires after the fleet was down past them.

    `skip`: none of the missed ones; `latest`: only the most recent; `all`: each of them.
    """

    SKIP = "skip"
    LATEST = "latest"
    ALL = "all"


class Overlap(StrEnum):
    """What a schedule's tick does while the run of its previous tick is still active.

    `skip`: the tick starts nothing; `allow`: it starts a run anyway.
    """

    SKIP = "skip"
    ALLOW = "allow"


class ScheduleSpec(_Frozen):
    """A schedule the workflow declares: a run on each tick of `cron` in `timezone`.

    `input` is the run's input (checked against the workflow's input at compile time).
    Each tick fires once across the fleet; `catch_up` and `overlap` say what happens
    after downtime and while an earlier run is still going.
    """

    name: str
    cron: str
    timezone: str = "UTC"
    input: dict[str, Any] = Field(default_factory=dict)
    catch_up: CatchUp = CatchUp.LATEST
    overlap: Overlap = Overlap.SKIP


class PlanStage(_Frozen):
    """One stage: its schemas, policies and the class that implements it.

    `implementation` is `module:Class`. A module path starting with `.` is
    relative to the package that holds the plan (what the compiler writes, so
    a compiled package can be moved or renamed); otherwise it is absolute.
    A built-in stage has no class: `wfc:sleep` with `sleep`, `wfc:signal` with
    `wait_for` (`SleepSpec`, `SignalWait`), `wfc:child` with `child` (`ChildWorkflow`).
    """

    id: str
    name: str
    description: str | None = None
    kind: StageKind = StageKind.SYNC
    input_source: InputSource = InputSource.FLOW
    input_from: str | None = None
    input_schema: JsonSchema = Field(default_factory=lambda: dict(EMPTY_OBJECT_SCHEMA))
    output_schema: JsonSchema = Field(default_factory=lambda: dict(EMPTY_OBJECT_SCHEMA))
    config_schema: JsonSchema = Field(default_factory=lambda: dict(EMPTY_OBJECT_SCHEMA))
    config_defaults: dict[str, Any] = Field(default_factory=dict)
    needs: tuple[str, ...] = ()
    # Needs that may have been skipped (a `when` upstream): the stage sees None for them.
    optional_needs: tuple[str, ...] = ()
    # Run the stage only when this holds; else it is SKIPPED (and so are stages that
    # need nothing but skipped stages).
    when: Condition | None = None
    # Run once per item of a list (`input_source` is then `item`).
    map: MapSpec | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout_ms: int | None = Field(default=None, gt=0)
    poll: PollPolicy | None = None
    priority: int | None = None
    # Only workers serving this queue run the stage (the workflow's queue when None).
    queue: str | None = None
    concurrency: ConcurrencyLimit | None = None
    rate: RateLimit | None = None
    # A built-in stage: a durable sleep, or a wait for a signal (`implementation` says which).
    sleep: SleepSpec | None = None
    wait_for: SignalWait | None = None
    # A built-in stage running another workflow as a child run (`wfc.plan_children`).
    child: ChildWorkflow | None = None
    implementation: str

    @property
    def builtin(self) -> bool:
        """Whether the runtime implements this stage (a sleep, a signal wait, a child run)."""
        return self.sleep is not None or self.wait_for is not None or self.child is not None

    @model_validator(mode="after")
    def _builtin_shape(self) -> Self:
        problem = builtin_problems(self)
        if problem:
            raise ValueError(f"stage {self.id!r}: {problem}")
        return self

    @model_validator(mode="after")
    def _input_from_matches_source(self) -> Self:
        if (self.input_source is InputSource.STAGE) != (self.input_from is not None):
            raise ValueError(
                f"stage {self.id!r}: input_from must be set exactly when input_source is 'stage'"
            )
        if self.poll is not None and self.kind is not StageKind.ASYNC:
            raise ValueError(f"stage {self.id!r}: only async stages have a poll policy")
        if (self.map is None) != (self.input_source is not InputSource.ITEM):
            raise ValueError(
                f"stage {self.id!r}: input_source is 'item' exactly when the stage has a map"
            )
        stray = [dep for dep in self.optional_needs if dep not in self.needs]
        if stray:
            raise ValueError(f"stage {self.id!r}: optional needs not in needs: {stray}")
        return self


class Plan(_Frozen):
    """An executable workflow: stages in definition order and the groups they run in.

    Groups run one after the other; the stages of one group run concurrently.
    Every stage is in exactly one group, and a stage only `needs` stages of
    earlier groups. The validators enforce this so that a hand-built or
    hand-edited plan cannot reach the kernel broken.
    """

    plan_version: Literal[1] = 1
    workflow_id: str
    name: str
    description: str | None = None
    input_schema: JsonSchema = Field(default_factory=lambda: dict(EMPTY_OBJECT_SCHEMA))
    output_schema: JsonSchema = Field(default_factory=lambda: dict(EMPTY_OBJECT_SCHEMA))
    stages: tuple[PlanStage, ...]
    groups: tuple[tuple[str, ...], ...]
    # The queue of every stage that names none (None: the `default` queue).
    queue: str | None = None
    schedules: tuple[ScheduleSpec, ...] = ()
    signals: tuple[SignalSpec, ...] = ()
    fingerprint: str = ""

    @model_validator(mode="after")
    def _check_structure(self) -> Self:
        ids = [stage.id for stage in self.stages]
        known = set(ids)  # a set, and counts below: list lookups made 5,000 stages quadratic
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise ValueError(f"duplicate stage ids: {', '.join(duplicates)}")
        group_of: dict[str, int] = {}
        for index, group in enumerate(self.groups):
            if not group:
                raise ValueError(f"execution group {index + 1} is empty")
            for stage_id in group:
                if stage_id not in known:
                    raise ValueError(f"group {index + 1} names unknown stage {stage_id!r}")
                if stage_id in group_of:
                    raise ValueError(f"stage {stage_id!r} is in more than one group")
                group_of[stage_id] = index
        names = [schedule.name for schedule in self.schedules]
        twice = sorted(n for n, count in Counter(names).items() if count > 1)
        if twice:
            raise ValueError(f"duplicate schedule names: {', '.join(twice)}")
        missing = [i for i in ids if i not in group_of]
        if missing:
            raise ValueError(f"stages in no execution group: {', '.join(missing)}")
        self._check_signals()
        for stage in self.stages:
            read = stage.when.roots() - {"input"} if stage.when else set()
            if stage.map is not None and stage.map.over[0] != "input":
                read.add(stage.map.over[0])
            if stage.sleep is not None and stage.sleep.until and stage.sleep.until[0] != "input":
                read.add(stage.sleep.until[0])
            earlier = [
                *stage.needs,
                *([stage.input_from] if stage.input_from else []),
                *sorted(read),
            ]
            for dep in earlier:
                if dep not in group_of or group_of[dep] >= group_of[stage.id]:
                    raise ValueError(
                        f"stage {stage.id!r} needs {dep!r}, which does not run earlier"
                    )
        return self

    def _check_signals(self) -> None:
        problem = signal_problem(self.signals, self.stages)
        if problem:
            raise ValueError(problem)

    def signal(self, name: str) -> SignalSpec | None:
        """The declared signal with this name, or None."""
        return next((signal for signal in self.signals if signal.name == name), None)

    # -- identity ---------------------------------------------------------

    def content(self) -> dict[str, Any]:
        """Everything but the fingerprint, as JSON-compatible data."""
        return without_unused(self.model_dump(mode="json", exclude={"fingerprint"}))

    @cached_property
    def canonical_content(self) -> str:
        """The canonical compact JSON of the plan's content (keys sorted, no spaces), which
        the fingerprint hashes. Kept once made (the plan is frozen): `to_json` starts from
        it, which for 5,000 stages spares a second dump of the plan and a walk in Python
        that sorts its keys, about 0.1 s of a compile. (Kept in the instance's `__dict__`,
        as a `cached_property` is; pydantic's equality compares fields only.)"""
        return json.dumps(self.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def compute_fingerprint(self) -> str:
        """`sha256:<hex>` of the canonical compact JSON of the plan's content."""
        return "sha256:" + hashlib.sha256(self.canonical_content.encode("utf-8")).hexdigest()

    def with_fingerprint(self) -> Plan:
        """A copy whose `fingerprint` is computed from its content (and which keeps the
        canonical content: only the fingerprint differs)."""
        plan = self.model_copy(update={"fingerprint": self.compute_fingerprint()})
        plan.__dict__["canonical_content"] = self.canonical_content
        return plan

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy, as pydantic makes it, without the kept canonical content: `update` may
        change what it was made of."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("canonical_content", None)
        return copy

    def verify_fingerprint(self) -> bool:
        """True when the stored fingerprint matches the content (the file was not hand-edited)."""
        return self.fingerprint == self.compute_fingerprint()

    # -- serialisation ----------------------------------------------------

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, two-space indent, trailing newline."""
        if "canonical_content" in self.__dict__:  # made already, by `with_fingerprint`
            return indented_json_of_sorted(
                self.canonical_content, {"fingerprint": self.fingerprint}
            )
        return indented_json(without_unused(self.model_dump(mode="json")))

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        """Parse and validate a plan; raises `pydantic.ValidationError` on a bad one."""
        return cls.model_validate_json(text)

    # -- queries the runtime and tools share ------------------------------

    def stage(self, stage_id: str) -> PlanStage:
        """The stage with this id; `KeyError` when there is none."""
        for stage in self.stages:
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)

    def stage_ids(self) -> list[str]:
        """Stage ids in definition order."""
        return [stage.id for stage in self.stages]

    def execution_group(self, stage_id: str) -> int:
        """The 1-based group the stage runs in."""
        for index, group in enumerate(self.groups):
            if stage_id in group:
                return index + 1
        raise KeyError(stage_id)

    def queue_of(self, stage_id: str) -> str:
        """The queue whose workers run the stage: its own, else the workflow's, else `default`."""
        return self.stage(stage_id).queue or self.queue or DEFAULT_QUEUE

    def default_config(self) -> dict[str, dict[str, Any]]:
        """`{stage_id: defaults}` for every stage, as `run.create` merges it."""
        return {stage.id: dict(stage.config_defaults) for stage in self.stages}
