"""`event_payload` builds most events' JSON without pydantic's serializer: it must be
exactly what `model_dump(mode="json")` gives, keys in the same order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from wfc.runtime import events as ev
from wfc.runtime.events import event_payload

INSTANTS = [
    datetime(2025, 1, 1, tzinfo=UTC),
    datetime(2025, 1, 1, 12, 30, 5, 123456, tzinfo=UTC),
    datetime(2025, 1, 1, 12, 30, 5, 500000, tzinfo=UTC),
    datetime(2025, 6, 1, 8, tzinfo=timezone(timedelta(hours=2))),
    datetime(2025, 6, 1, 8, 0, 0, 7),
]


def _events(at: datetime) -> list[ev.Event]:
    common = {"timestamp": at, "workflow_run_id": "run-1"}
    return [
        ev.WorkflowCreated(**common, workflow_id="w"),
        ev.WorkflowStarted(**common),
        ev.WorkflowCompleted(**common, duration_ms=3, output={"n": [1, 2.5]}, total_cost=0.5),
        ev.WorkflowFailed(**common, error="boom", code="STAGE_FAILED"),
        ev.WorkflowFailed(**common, error="boom"),
        ev.WorkflowCancelled(**common),
        ev.WorkflowSuspended(**common, stage_id="a"),
        ev.StageStarted(**common, stage_id="a", stage_name="A", stage_number=2, attempt=3),
        ev.StageCompleted(**common, stage_id="a", stage_name="A", duration_ms=None),
        ev.StageSuspended(**common, stage_id="a", stage_name="A", next_poll_at=at),
        ev.StageFailed(**common, stage_id="a", stage_name="A", error="x", retry_at=at),
        ev.StageFailed(**common, stage_id="a", stage_name="A", error="x"),
        ev.StageSkipped(**common, stage_id="a", stage_name="A", reason="when"),
        ev.StageProgress(**common, stage_id="a", progress=0.5, details={"k": 1}),
    ]


@pytest.mark.parametrize("at", INSTANTS, ids=str)
def test_payload_is_pydantics_json_dump(at: datetime) -> None:
    for event in _events(at):
        assert list(event_payload(event).items()) == list(event.model_dump(mode="json").items())


def test_every_event_class_is_covered() -> None:
    """A new event class is either plain (built directly) or dumped by pydantic; the test
    above names one of each, so a class added later is compared too once listed there."""
    made = {type(event) for event in _events(INSTANTS[0])}
    assert made == set(ev._Event.__subclasses__())
    assert {ev.StageStarted, ev.StageCompleted, ev.WorkflowStarted} <= ev._PLAIN
    assert ev.WorkflowCompleted not in ev._PLAIN  # its output is any JSON value


def test_instants_alternating_are_not_mixed_up() -> None:
    """The memo is by identity: an equal instant in another zone keeps its own text."""
    utc = datetime(2025, 1, 1, 10, tzinfo=UTC)
    same = utc.astimezone(timezone(timedelta(hours=1)))
    for at in (utc, same, utc, same):
        event = ev.WorkflowStarted(timestamp=at, workflow_run_id="r")
        assert event_payload(event) == event.model_dump(mode="json")
