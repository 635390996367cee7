"""The rows the runtime keeps: runs, stages, jobs, logs and outbox events.

Records are frozen dataclasses: an adapter hands out copies, and a change is a
`*Changes` mapping applied by the adapter, which bumps `version` and
`updated_at`. A key absent from a `*Changes` mapping leaves that field alone;
a key present with `None` clears it (spec §2.11). JSON-valued fields hold
plain `dict`/`list` data, never models, so every adapter stores them as-is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypedDict

from wfc.runtime.record_builders import builder, quick_init

# `wfc.plan.DEFAULT_QUEUE`: records sit below the plan (tests/unit/test_import_layers.py).
DEFAULT_QUEUE = "default"

JsonObject = dict[str, Any]
LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR"]


class Status(StrEnum):
    """One status set shared by runs, stages and jobs (which values each uses: spec §2.1)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"  # a stage whose `when` was false (stages only)


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.SKIPPED})
"""A run or stage in one of these is finished."""

ACTIVE = frozenset({Status.PENDING, Status.RUNNING, Status.SUSPENDED})
"""A stage in one of these still holds its execution group open."""

_RUNNING = frozenset({Status.RUNNING})
_SUSPENDED = frozenset({Status.SUSPENDED})


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One execution of a workflow.

    `input` is the input as parsed by the workflow's input model (defaults
    filled), so every stage sees the same value. `error` is set when the run
    fails: `{"code", "message", "stage_id"?}`.
    """

    id: str
    workflow_id: str
    workflow_name: str
    plan_fingerprint: str
    status: Status
    input: JsonObject
    config: dict[str, JsonObject]
    priority: int
    created_at: datetime
    updated_at: datetime
    version: int = 1
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    output: Any = None
    error: JsonObject | None = None
    total_cost: float = 0.0
    total_tokens: int = 0
    metadata: JsonObject | None = None
    parent_run_id: str | None = None
    parent_stage_id: str | None = None
    # The W3C traceparent the run's spans join (`wfc.observability`), when it has one.
    trace_context: str | None = None


class RunChanges(TypedDict, total=False):
    """Fields `Persistence.update_run` may change."""

    status: Status
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    output: Any
    error: JsonObject | None
    total_cost: float
    total_tokens: int
    plan_fingerprint: str  # a run adopted by a newer plan of its workflow


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class RunClaim:
    """A run just moved from PENDING to RUNNING, and whether other runs were PENDING then,
    so a claimer that finds none stops without one more (empty) claim."""

    run: RunRecord
    others_pending: bool


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class StageRecord:
    """One stage of one run: the latest execution of it.

    `generation` counts reruns (0 originally, +1 per `run.rerunFrom` over it);
    `attempt` is the job delivery that last ran it. `output_ref` is the blob key
    of the output, never the output itself.
    """

    id: str
    run_id: str
    stage_id: str
    stage_name: str
    stage_number: int
    execution_group: int
    status: Status
    config: JsonObject
    created_at: datetime
    updated_at: datetime
    version: int = 1
    generation: int = 0
    attempt: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    output_ref: str | None = None
    suspended_state: JsonObject | None = None
    next_poll_at: datetime | None = None
    poll_interval_ms: int | None = None
    max_wait_until: datetime | None = None
    metrics: JsonObject = field(default_factory=dict)
    error: str | None = None
    # A mapped stage's items (`MapSpec`): how many there are, how many this pass runs (all,
    # or the failed ones on a rerun of failed items), how many of those are queued so far,
    # and how many finished. All 0 for a stage that is not mapped.
    items_total: int = 0
    items_queued: int = 0
    items_next: int = 0
    items_done: int = 0
    items_failed: int = 0


class StageChanges(TypedDict, total=False):
    """Fields `Persistence.update_stage` and the update branch of `upsert_stage` may change."""

    status: Status
    generation: int
    attempt: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    output_ref: str | None
    suspended_state: JsonObject | None
    next_poll_at: datetime | None
    poll_interval_ms: int | None
    max_wait_until: datetime | None
    metrics: JsonObject
    error: str | None
    items_total: int
    items_queued: int
    items_next: int
    items_done: int
    items_failed: int


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRecord:
    """One item of a mapped stage of one run: the latest execution of it.

    Fenced like a stage row (`StageFence`): a delivery starts it at its attempt and
    records its outcome only while the row is still RUNNING at that attempt. `output`
    is held in the row itself, so gathering a map's results is one read.
    """

    id: str
    run_id: str
    stage_id: str
    item_index: int
    status: Status
    created_at: datetime
    updated_at: datetime
    version: int = 1
    generation: int = 0
    attempt: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    output: Any = None
    error: str | None = None
    metrics: JsonObject = field(default_factory=dict)
    suspended_state: JsonObject | None = None
    next_poll_at: datetime | None = None
    poll_interval_ms: int | None = None
    max_wait_until: datetime | None = None


class ItemChanges(TypedDict, total=False):
    """Fields `Persistence.start_item` and `update_item` may change."""

    status: Status
    generation: int
    attempt: int
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    output: Any
    error: str | None
    metrics: JsonObject
    suspended_state: JsonObject | None
    next_poll_at: datetime | None
    poll_interval_ms: int | None
    max_wait_until: datetime | None


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class StageFence:
    """What a stage row must still be for a write to it to land.

    A stage's outcome is written by whoever ran or polled it, often long after
    it read the row: a worker paused past its lease, or a second poller, may
    find that another attempt has since taken the stage over or committed it.
    A write fenced this way commits only if the row is still in one of
    `statuses`, at `attempt` (and below `before_attempt`, for a new attempt
    taking the stage over) and at `version` where those are given; otherwise it
    writes nothing and the writer's result is a ghost.
    """

    statuses: frozenset[Status]
    attempt: int | None = None
    before_attempt: int | None = None
    version: int | None = None
    # A map item's pass: a row of an earlier pass is taken over whatever it holds, a row
    # of a later one never, and a row of this pass only on the conditions above.
    generation: int | None = None
    # A map item's start: its stage's row (its run's, of its stage id) must also still be
    # RUNNING at `generation`, checked by the same write. A delivery that read the run
    # before a cancel or a rerun (a warm start reads nothing) then writes no RUNNING row
    # into a stage that has ended or moved on.
    stage_running: bool = False

    @classmethod
    def running(cls, attempt: int) -> StageFence:
        """The stage is still RUNNING for this delivery (`job.execute`'s outcome)."""
        return cls(statuses=_RUNNING, attempt=attempt)

    @classmethod
    def startable(cls, attempt: int) -> StageFence:
        """The stage is still open and no later delivery started it (`job.execute`'s start).
        A SUSPENDED stage counts as open: a job redelivered because its worker died before
        parking it runs the stage again, with the suspended state as `resume_state`."""
        return cls(statuses=ACTIVE, before_attempt=attempt)

    @classmethod
    def item_startable(cls, attempt: int, generation: int) -> StageFence:
        """The item is open in this pass and no later delivery started it, or its row is
        left from an earlier pass (an item start that lost a race with a rerun wrote it:
        the new pass's delivery must not be refused for it); and only while its stage's row
        is RUNNING at `generation`."""
        return replace(cls.startable(attempt), generation=generation, stage_running=True)

    @classmethod
    def polled(cls, version: int) -> StageFence:
        """The stage is still SUSPENDED as this poller claimed it (`stage.pollSuspended`)."""
        return cls(statuses=_SUSPENDED, version=version)

    def holds(self, row: StageRecord | ItemRecord) -> bool:
        """Whether `row` is still what this fence requires."""
        if self.generation is not None and row.generation != self.generation:
            return row.generation < self.generation
        return (
            row.status in self.statuses
            and (self.attempt is None or row.attempt == self.attempt)
            and (self.before_attempt is None or row.attempt < self.before_attempt)
            and (self.version is None or row.version == self.version)
        )


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRecord:
    """A plan some run was created with or some worker serves, kept by its fingerprint, so
    the plan a run was created with can be shown (and drawn) after it is deployed no more."""

    fingerprint: str
    workflow_id: str
    workflow_name: str
    plan: str  # the plan's canonical JSON
    recorded_at: datetime


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRecord:
    """A worker that announced itself, the plans it serves, and until when it counts as
    alive (it announces itself again every maintenance tick, before then)."""

    worker_id: str
    plans: list[str]
    started_at: datetime
    seen_at: datetime
    expires_at: datetime
    queues: list[str] = field(default_factory=lambda: [DEFAULT_QUEUE])


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """A log line written by a stage or by the kernel about a run."""

    id: str
    run_id: str
    stage_record_id: str | None
    level: LogLevel
    message: str
    fields: JsonObject
    created_at: datetime


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class SignalRecord:
    """A signal sent to a run (`run.signal`): kept until a stage waiting for `name` takes it.

    `idempotency_key` is unique per run: a second send under it is the same signal.
    `consumed_by` is the id of the stage row that took it, at `consumed_at`; signals of
    one name are taken in the order they were sent (`sequence`, given by the store).
    """

    id: str
    run_id: str
    name: str
    idempotency_key: str
    payload: Any
    sent_at: datetime
    sequence: int = 0
    consumed_at: datetime | None = None
    consumed_by: str | None = None


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class NewOutboxEvent:
    """An event to append to the outbox; the adapter assigns its per-run sequence, which
    with the run names it (`OutboxRecord.id`): it needs no id of its own."""

    run_id: str
    event_type: str
    payload: JsonObject
    causation_id: str
    occurred_at: datetime

    def numbered(self, sequence: int, position: int | None = None) -> OutboxRecord:
        """This event as appended at `sequence` of its run (at `position` of the outbox,
        when the store gives it before the row goes in)."""
        return _NEW_OUTBOX_RECORD(
            run_id=self.run_id,
            sequence=sequence,
            event_type=self.event_type,
            payload=self.payload,
            causation_id=self.causation_id,
            occurred_at=self.occurred_at,
            position=position,
        )


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxRecord:
    """An event in the outbox, published by `outbox.flush`.

    Its run and sequence name it (`id`); `position` is its place in the whole
    outbox's append order, which the store gives: set on the events read back (the
    records `append_outbox` returns may carry None: SQL numbers the row as it goes in). The delivery
    bookkeeping (`mark_published`, `increment_outbox_retry`, `move_to_dlq`) takes the
    records read back, so each store finds them by the key it already holds (SQL: the
    position, its rowid), where a random event id needed an index of its own that
    every append wrote a random page of.
    """

    run_id: str
    sequence: int
    event_type: str
    payload: JsonObject
    causation_id: str
    occurred_at: datetime
    published_at: datetime | None = None
    retry_count: int = 0
    dlq_at: datetime | None = None
    position: int | None = None

    @property
    def id(self) -> str:
        """The event's id, unique and stable: its run's id and its sequence in the run."""
        return f"{self.run_id}:{self.sequence}"


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Acquired:
    """The idempotency key is ours: run the command."""


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Replay:
    """The command already ran with this key: return its stored result."""

    result: JsonObject


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class InProgress:
    """Another caller holds this key and has not finished."""


IdempotencyClaim = Acquired | Replay | InProgress


# Nine events a three-stage run, each numbered as it is appended: built without a class
# call (`record_builders.builder`).
_NEW_OUTBOX_RECORD = builder(OutboxRecord)
