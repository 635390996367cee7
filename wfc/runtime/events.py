"""The events a run produces (spec §5), written to the outbox with the state they describe.

Each is a frozen pydantic model whose `type` is the seed's event name, so the
payload stored in the outbox is the event's JSON and `parse_event` turns it
back into the typed event that plugins receive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timestamp: datetime
    workflow_run_id: str


class WorkflowCreated(_Event):
    """A run was created and waits to be claimed."""

    type: Literal["workflow:created"] = "workflow:created"
    workflow_id: str


class WorkflowStarted(_Event):
    """A run was claimed (or rerun) and its first group queued."""

    type: Literal["workflow:started"] = "workflow:started"


class WorkflowCompleted(_Event):
    """A run finished; `output` is its last group's output."""

    type: Literal["workflow:completed"] = "workflow:completed"
    duration_ms: int | None = None
    output: Any = None
    total_cost: float = 0.0
    total_tokens: int = 0


class WorkflowFailed(_Event):
    """A run failed; `code` says why (`STAGE_FAILED`, `STUCK_RUN_REAPED` …)."""

    type: Literal["workflow:failed"] = "workflow:failed"
    error: str
    code: str | None = None


class WorkflowCancelled(_Event):
    """A run was cancelled."""

    type: Literal["workflow:cancelled"] = "workflow:cancelled"
    reason: str | None = None


class WorkflowSuspended(_Event):
    """A stage of the run suspended; the run waits for it."""

    type: Literal["workflow:suspended"] = "workflow:suspended"
    stage_id: str


class StageStarted(_Event):
    """A stage began executing (delivery `attempt` of its job)."""

    type: Literal["stage:started"] = "stage:started"
    stage_id: str
    stage_name: str
    stage_number: int
    attempt: int = 1


class StageCompleted(_Event):
    """A stage produced its output."""

    type: Literal["stage:completed"] = "stage:completed"
    stage_id: str
    stage_name: str
    duration_ms: int | None = None


class StageSuspended(_Event):
    """A stage suspended and will be polled at `next_poll_at`."""

    type: Literal["stage:suspended"] = "stage:suspended"
    stage_id: str
    stage_name: str
    next_poll_at: datetime


class StageFailed(_Event):
    """A stage attempt failed; `retry_at` is set when it will be tried again."""

    type: Literal["stage:failed"] = "stage:failed"
    stage_id: str
    stage_name: str
    error: str
    retry_at: datetime | None = None


class StageSkipped(_Event):
    """A stage did not run: its `when` was false, or everything it needs was skipped."""

    type: Literal["stage:skipped"] = "stage:skipped"
    stage_id: str
    stage_name: str
    reason: str


class StageProgress(_Event):
    """Progress a stage reported (`progress` from 0 to 1), stored with its outcome;
    `details` is the JSON data the stage passed with it (`ctx.progress(details=...)`)."""

    type: Literal["stage:progress"] = "stage:progress"
    stage_id: str
    progress: float
    message: str | None = None
    details: dict[str, Any] | None = None


Event = Annotated[
    WorkflowCreated
    | WorkflowStarted
    | WorkflowCompleted
    | WorkflowFailed
    | WorkflowCancelled
    | WorkflowSuspended
    | StageStarted
    | StageCompleted
    | StageSuspended
    | StageFailed
    | StageSkipped
    | StageProgress,
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[str, ...] = (
    "workflow:created",
    "workflow:started",
    "workflow:completed",
    "workflow:failed",
    "workflow:cancelled",
    "workflow:suspended",
    "stage:started",
    "stage:completed",
    "stage:suspended",
    "stage:failed",
    "stage:skipped",
    "stage:progress",
)

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(payload: dict[str, Any]) -> Event:
    """The typed event stored as `payload` in the outbox."""
    return _EVENT_ADAPTER.validate_python(payload)


def event_payload(event: Event) -> dict[str, Any]:
    """The JSON form of an event, as stored in the outbox and given to sinks.

    Exactly `event.model_dump(mode="json")`, built without it for the events whose
    fields are all strings, integers and instants (`_PLAIN`): every event of every run
    passes here, and pydantic's serializer cost a few microseconds each, most of a
    run's events' cost. Their fields need no conversion but the instants, which go
    through pydantic's own serializer (`_instant`), so the text is pydantic's. The
    others (an output, a float, a details dict) are dumped by pydantic.
    """
    if type(event) not in _PLAIN:
        return event.model_dump(mode="json")
    payload = dict(event.__dict__)
    for name in _INSTANTS[type(event)]:
        value = payload[name]
        if value is not None:
            payload[name] = _instant(value)
    return payload


_INSTANT_ADAPTER: TypeAdapter[datetime] = TypeAdapter(datetime)
# The last instant converted and its text, as one tuple so that threads replace it whole.
_last_instant: tuple[datetime | None, str] = (None, "")


def _instant(value: datetime) -> str:
    """`value` in pydantic's JSON form; the last one converted is remembered, by identity
    (a test's fake clock hands out the same instant until it is moved)."""
    global _last_instant
    last, text = _last_instant
    if last is not value:
        text = str(_INSTANT_ADAPTER.dump_python(value, mode="json"))
        _last_instant = (value, text)
    return text


def _plain_fields(kind: type[_Event]) -> tuple[str, ...] | None:
    """The names of `kind`'s instant fields if every field is a str, int or instant
    (perhaps None, or a `Literal` string), else None."""
    instants = []
    for name, info in kind.model_fields.items():
        annotation = info.annotation
        if annotation in (datetime, datetime | None):
            instants.append(name)
        elif annotation not in (str, int, str | None, int | None) and (
            get_origin(annotation) is not Literal
        ):
            return None
    return tuple(instants)


_INSTANTS: dict[type[_Event], tuple[str, ...]] = {
    kind: names for kind in _Event.__subclasses__() if (names := _plain_fields(kind)) is not None
}
_PLAIN = frozenset(_INSTANTS)
