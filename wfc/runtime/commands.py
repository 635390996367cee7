"""The kernel's commands and their results (DESIGN.md §6, spec §4).

A command is a frozen pydantic model whose `type` is the seed's name, so a
web handler can pass `{"type": "run.create", ...}` straight from a queue
message or request body; `parse_command` accepts a model, a dict or JSON
text. Field names are snake_case; the seed's camelCase names are accepted as
aliases. Results are models too: the idempotency store keeps their JSON and
replays it as the same model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from wfc.runtime.storable import unstorable_part

JsonObject = dict[str, Any]


class _Message(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


# -- commands ------------------------------------------------------------------

# What every database stores the same way: a priority is a 32-bit integer (PostgreSQL's
# `integer`; SQLite would take any), an idempotency key and a run id bounded strings
# without NUL or lone surrogates. Refused when the command is made, on every database
# alike, rather than by one database's commit.
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1
IDEMPOTENCY_KEY_MAX = 200
RUN_ID_MAX = 64


class RunCreate(_Message):
    """Create a PENDING run; `idempotency_key` makes a retried request create it once."""

    type: Literal["run.create"] = "run.create"
    idempotency_key: str = Field(min_length=1, max_length=IDEMPOTENCY_KEY_MAX)
    workflow_id: str
    input: JsonObject = Field(default_factory=dict)
    config: dict[str, JsonObject] = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    metadata: JsonObject | None = None
    run_id: str | None = Field(default=None, min_length=1, max_length=RUN_ID_MAX)

    @field_validator("idempotency_key", "run_id")
    @classmethod
    def _storable(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Text every database stores: no NUL (PostgreSQL refuses it), no lone surrogate
        (no UTF-8 driver can send one)."""
        problem = None if value is None else unstorable_part(value, info.field_name or "")
        if problem is not None:
            raise ValueError(f"{problem}, which no database can store")
        return value


class RunClaimPending(_Message):
    """Start up to `max_claims` PENDING runs: their first group's stages are queued."""

    type: Literal["run.claimPending"] = "run.claimPending"
    worker_id: str
    max_claims: int = Field(default=10, ge=1)
    # A host serving one run (`wfc run`) claims that run or nothing.
    workflow_run_id: str | None = None


class RunTransition(_Message):
    """Advance a run whose current group is done: next group, completion or failure."""

    type: Literal["run.transition"] = "run.transition"
    workflow_run_id: str


class RunCancel(_Message):
    """Cancel a PENDING or RUNNING run, its open stages and its queued jobs."""

    type: Literal["run.cancel"] = "run.cancel"
    workflow_run_id: str
    reason: str | None = None


class RunRerunFrom(_Message):
    """Run a finished run again from a stage's execution group onward."""

    type: Literal["run.rerunFrom"] = "run.rerunFrom"
    workflow_run_id: str
    from_stage_id: str
    idempotency_key: str | None = None
    # A mapped stage: run again only its items that did not complete (failed, cancelled,
    # or never started); the completed ones keep their results.
    only_failed_items: bool = False


class RunSignal(_Message):
    """Send the signal `name` with `payload` to a run: it completes the stage waiting for
    it now, or is kept for the first stage to wait for it. Refused for a missing or
    finished run, a signal its workflow does not declare, or a payload that does not fit
    the declared schema. `idempotency_key` (unique per run; a fresh one when None): a
    second send under it is the same signal, delivered once."""

    type: Literal["run.signal"] = "run.signal"
    workflow_run_id: str
    name: str = Field(min_length=1)
    payload: JsonValue = None  # JSON data only: every store keeps it as JSON text
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=IDEMPOTENCY_KEY_MAX)

    @field_validator("payload")
    @classmethod
    def _storable_payload(cls, value: Any) -> Any:
        """JSON every database stores: no NUL, no lone surrogate, no NaN or infinity
        (`JsonValue` takes them; PostgreSQL refused them at the commit)."""
        problem = unstorable_part(value, "payload")
        if problem is not None:
            raise ValueError(f"{problem}, which no database can store")
        return value


class JobExecute(_Message):
    """Execute one stage of a run (what a worker does with a dequeued job).

    With `transition`, a completed stage's transaction also runs `run.transition`
    (one commit where there were two), and the result says what it did. `job_id`
    is the leased job being executed: when the job queue shares the kernel's
    transactions, that transaction completes it too (`job_completed` in the result).
    """

    type: Literal["job.execute"] = "job.execute"
    workflow_run_id: str
    workflow_id: str
    stage_id: str
    config: dict[str, JsonObject] = Field(default_factory=dict)
    attempt: int = Field(default=1, ge=1)
    idempotency_key: str | None = None
    transition: bool = False
    job_id: str | None = None
    # One item of a mapped stage (its index), queued for the stage's rerun `generation`.
    item: int | None = Field(default=None, ge=0)
    generation: int = Field(default=0, ge=0)
    # The job's concurrency key, resolved from the run's input when it was queued: an
    # item carries it on to the next item's job without reading that input again.
    concurrency_key: str | None = None


class StagePollSuspended(_Message):
    """Check up to `max_checks` suspended stages whose poll time has come."""

    type: Literal["stage.pollSuspended"] = "stage.pollSuspended"
    max_checks: int = Field(default=50, ge=1)
    # How long a stage this poll claims is kept from other pollers: longer than a
    # `check_completion` takes; a poller that dies leaves its stages due again after it.
    claim_ms: int = Field(default=300_000, ge=1)
    # A host serving one run (`wfc run`) checks that run's stages only.
    workflow_run_id: str | None = None


class LeaseReapStale(_Message):
    """Return jobs whose lease is older than the threshold to the queue."""

    type: Literal["lease.reapStale"] = "lease.reapStale"
    stale_threshold_ms: int = Field(ge=0)


class RunReapStuck(_Message):
    """Recover or fail RUNNING runs with no activity for longer than the threshold."""

    type: Literal["run.reapStuck"] = "run.reapStuck"
    stuck_threshold_ms: int = Field(ge=0)


class OutboxFlush(_Message):
    """Deliver up to `max_events` unpublished events to the event sink, in order per run."""

    type: Literal["outbox.flush"] = "outbox.flush"
    max_events: int = Field(default=100, ge=1)


class PluginReplayDLQ(_Message):
    """Put up to `max_events` dead-lettered events back in line for delivery."""

    type: Literal["plugin.replayDLQ"] = "plugin.replayDLQ"
    max_events: int = Field(default=100, ge=1)


Command = Annotated[
    RunCreate
    | RunClaimPending
    | RunTransition
    | RunCancel
    | RunRerunFrom
    | RunSignal
    | JobExecute
    | StagePollSuspended
    | LeaseReapStale
    | RunReapStuck
    | OutboxFlush
    | PluginReplayDLQ,
    Field(discriminator="type"),
]

COMMAND_TYPES: tuple[str, ...] = (
    "run.create",
    "run.claimPending",
    "run.transition",
    "run.cancel",
    "run.rerunFrom",
    "run.signal",
    "job.execute",
    "stage.pollSuspended",
    "lease.reapStale",
    "run.reapStuck",
    "outbox.flush",
    "plugin.replayDLQ",
)

_COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(message: Command | JsonObject | str | bytes) -> Command:
    """A command from a model, a dict or JSON text; `UnknownCommandError` for an unknown `type`."""
    if isinstance(message, BaseModel):
        return message
    if isinstance(message, str | bytes):
        return _COMMAND_ADAPTER.validate_json(message)
    kind = message.get("type")
    if kind not in COMMAND_TYPES:
        from wfc.errors import UnknownCommandError  # imported here, where it is needed

        raise UnknownCommandError(str(kind))
    return _COMMAND_ADAPTER.validate_python(message)


# -- results -------------------------------------------------------------------


class RunCreateResult(_Message):
    """The new run's id, and the status it was created with: PENDING, as the reference
    engine answers, even when a host of this process with a free slot claimed it in the
    same transaction (then it is RUNNING by the time this returns; read the run for its
    status now)."""

    workflow_run_id: str
    status: Literal["PENDING"] = "PENDING"


class ClaimedRun(_Message):
    """A run `run.claimPending` started, and the jobs it queued."""

    workflow_run_id: str
    workflow_id: str
    job_ids: list[str]


class RunClaimPendingResult(_Message):
    """Runs started, in claim order (priority, then age)."""

    claimed: list[ClaimedRun] = Field(default_factory=list)
    # Whether the last claim saw another PENDING run it could take: a host whose claim
    # filled its free slots claims again when one frees up only then (else that claim
    # would find nothing).
    others_pending: bool = False


class RunTransitionResult(_Message):
    """What the transition did; `noop` when the group is still open or another caller won."""

    action: Literal["advanced", "completed", "failed", "noop"]
    next_group: int | None = None


class RunCancelResult(_Message):
    """Whether the run was cancelled (False when it was missing or already finished)."""

    cancelled: bool


class RunRerunFromResult(_Message):
    """The stage rows deleted to rerun from `from_stage_id`."""

    workflow_run_id: str
    from_stage_id: str
    deleted_stages: list[str]


class RunSignalResult(_Message):
    """The signal kept (or, under a key used before, the one kept then: `duplicate`), and
    the stage that took it: `delivered_to` is None while no stage has waited for it."""

    signal_id: str
    delivered_to: str | None = None
    duplicate: bool = False
    transition: RunTransitionResult | None = None


class JobExecuteResult(_Message):
    """How one stage execution ended.

    `ghost` means the run was no longer RUNNING and the result was discarded:
    the job must not be retried. `retry_at` is set when a failed attempt
    should be tried again then (the stage's retry policy allows another).
    `transition` is what the run's transition did, when it ran in the same
    transaction; None when the caller must still dispatch `run.transition`.
    `job_completed`: the command's `job_id` was completed in that transaction.
    """

    outcome: Literal["completed", "suspended", "failed"]
    output: Any = None
    error: str | None = None
    next_poll_at: datetime | None = None
    ghost: bool = False
    retryable: bool = True
    retry_at: datetime | None = None
    transition: RunTransitionResult | None = None
    job_completed: bool = False


class StagePollSuspendedResult(_Message):
    """Counts of checked, resumed and failed suspended stages; runs to transition."""

    checked: int = 0
    resumed: int = 0
    failed: int = 0
    # Runs whose resumed stage was committed; each was transitioned in the same commit.
    resumed_workflow_run_ids: list[str] = Field(default_factory=list)
    # The earliest next poll among the stages still waiting after this one (None: none
    # checked still waits), for a host to poll again then rather than on its next tick.
    next_due_at: datetime | None = None


class LeaseReapStaleResult(_Message):
    """How many leases were released."""

    released: int


class RunReapStuckResult(_Message):
    """Stuck runs recovered (jobs re-queued), handed to a transition, or failed."""

    recovered: int = 0
    transitioned: int = 0
    failed: int = 0


class OutboxFlushResult(_Message):
    """How many events were delivered; `busy` when another flusher held the outbox, and
    `remaining` when the batch was full (more may be waiting: flush again now)."""

    published: int
    busy: bool = False
    remaining: bool = False


class PluginReplayDLQResult(_Message):
    """How many dead-lettered events were put back."""

    replayed: int
