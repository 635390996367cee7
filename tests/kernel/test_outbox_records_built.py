"""Each event of a run goes to the outbox as a `NewOutboxEvent` and comes back numbered
as an `OutboxRecord` (nine of each a three-stage run): both are built by
`record_builders.builder`, without a class call, and are the records the class builds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.records import NewOutboxEvent, OutboxRecord, Status
from wfc.testing import make_test_kernel


class Number(BaseModel):
    n: int


async def add_one(ctx: Any) -> Number:
    return Number(n=ctx.input.n + 1)


async def test_a_runs_events_reach_the_outbox_without_a_class_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow = (
        WorkflowBuilder("pair", "a, b", input=Number)
        .pipe(define_stage(id="a", input=Number, output=Number, execute=add_one))
        .pipe(define_stage(id="b", input=Number, output=Number, execute=add_one))
        .build()
    )
    tk = make_test_kernel(workflow)

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("built by a class call")

    monkeypatch.setattr(NewOutboxEvent, "__init__", refuse)
    monkeypatch.setattr(OutboxRecord, "__init__", refuse)
    run = await tk.run("pair", {"n": 0})
    assert run.status is Status.COMPLETED
    outbox = await tk.all_outbox()
    assert [e.sequence for e in outbox] == list(range(1, 8))
    assert all(type(e) is OutboxRecord and e.published_at is not None for e in outbox)
    assert [e.payload["type"] for e in outbox] == tk.sink.types()


def test_a_numbered_event_is_the_record_the_class_builds() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    event = NewOutboxEvent(
        run_id="r", event_type="t", payload={"k": 1}, causation_id="c", occurred_at=at
    )
    expected = OutboxRecord(
        run_id="r",
        sequence=4,
        event_type="t",
        payload={"k": 1},
        causation_id="c",
        occurred_at=at,
        position=9,
    )
    assert event.numbered(4, 9) == expected
    assert repr(event.numbered(4, 9)) == repr(expected)
