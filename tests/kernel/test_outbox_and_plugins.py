"""The outbox: ordered, gap-free per run, retried, dead-lettered, replayed; plugins on top."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.kernel.conftest import Script, build_workflows
from tests.kernel.helpers import DOC, start
from wfc.runtime import OutboxFlush, PluginReplayDLQ, define_plugin
from wfc.runtime.adapters.memory.outbox_keys import OutboxAndKeys
from wfc.runtime.events import Event, StageCompleted, WorkflowCompleted
from wfc.runtime.records import NewOutboxEvent, OutboxRecord
from wfc.testing import TestKernel, make_test_kernel


async def flush(tk: TestKernel) -> int:
    return (await tk.kernel.dispatch(OutboxFlush())).published


async def test_a_finished_run_publishes_its_events_in_order(tk: TestKernel) -> None:
    run_id = await start(tk, "linear")
    await tk.drive(run_id)
    assert tk.sink.types() == [
        "workflow:created",
        "workflow:started",
        *["stage:started", "stage:completed"] * 3,
        "workflow:completed",
    ]
    sequences = [e.sequence for e in await tk.persistence.outbox_of_run(run_id)]
    assert sequences == list(range(1, 10))
    assert await flush(tk) == 0  # everything was published once


async def test_a_failing_delivery_holds_back_that_runs_later_events(tk: TestKernel) -> None:
    first = await tk.create_run("linear", DOC)
    second = await tk.create_run("linear", DOC)
    await tk.kernel.dispatch({"type": "run.claimPending", "worker_id": "w"})
    tk.sink.fail_next(1)  # the first event of `first` fails
    assert await flush(tk) == 2  # only `second`'s two events
    assert [p["workflow_run_id"] for p in tk.sink.payloads] == [second, second]
    assert await flush(tk) == 2
    assert [p["type"] for p in tk.sink.payloads if p["workflow_run_id"] == first] == [
        "workflow:created",
        "workflow:started",
    ]


async def test_an_event_that_keeps_failing_is_dead_lettered_and_can_be_replayed(
    tk: TestKernel,
) -> None:
    run_id = await tk.create_run("linear", DOC)
    tk.sink.fail_next(3)
    for _ in range(3):
        assert await flush(tk) == 0
    parked = (await tk.persistence.outbox_of_run(run_id))[0]
    assert parked.dlq_at == tk.clock.now() and parked.retry_count == 3
    await tk.kernel.dispatch({"type": "run.claimPending", "worker_id": "w"})
    assert await flush(tk) == 1  # later events flow again once the blocker is parked
    assert tk.sink.types() == ["workflow:started"]
    assert (await tk.kernel.dispatch(PluginReplayDLQ())).replayed == 1
    assert await flush(tk) == 1
    assert tk.sink.types() == ["workflow:started", "workflow:created"]
    assert (await tk.kernel.dispatch(PluginReplayDLQ())).replayed == 0


async def test_concurrent_appends_to_one_run_get_sequences_one_to_ten(tk: TestKernel) -> None:
    async def append(i: int) -> None:
        async with tk.persistence.transaction() as tx:
            await tx.append_outbox(
                [
                    NewOutboxEvent(
                        run_id="r",
                        event_type="stage:progress",
                        payload={},
                        causation_id="c",
                        occurred_at=datetime(2025, 1, 1, tzinfo=UTC),
                    )
                ]
            )

    await asyncio.gather(*(append(i) for i in range(10)))
    assert sorted(e.sequence for e in await tk.persistence.outbox_of_run("r")) == list(range(1, 11))


async def test_plugins_see_the_events_they_subscribe_to(script: Script) -> None:
    seen: list[Event] = []
    stages: list[str] = []

    async def on_done(event: Event) -> None:
        seen.append(event)

    def on_stage(event: Event) -> None:
        assert isinstance(event, StageCompleted)
        stages.append(event.stage_id)

    tk = make_test_kernel(
        *build_workflows(script),
        plugins=[
            define_plugin(id="done", on=["workflow:completed"], handle=on_done),
            define_plugin(id="stages", on=["stage:completed"], handle=on_stage),
        ],
    )
    run_id = await start(tk, "linear")
    await tk.drive(run_id)
    assert len(seen) == 1 and isinstance(seen[0], WorkflowCompleted)
    assert seen[0].output == {"summary": "4: the quick brown fox"}
    assert stages == ["split", "count", "report"]


async def test_events_no_plugin_subscribes_to_are_published_unread(
    script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    unpublished = OutboxAndKeys.unpublished_outbox

    async def reading(
        self: OutboxAndKeys, limit: int, types: frozenset[str] | None = None
    ) -> list[OutboxRecord]:
        events = await unpublished(self, limit, types)
        read.extend(e.event_type for e in events)
        return events

    monkeypatch.setattr(OutboxAndKeys, "unpublished_outbox", reading)
    seen: list[str] = []
    tk = make_test_kernel(
        *build_workflows(script),
        plugins=[
            define_plugin(
                id="done", on=["workflow:completed"], handle=lambda e: seen.append(e.type)
            )
        ],
    )
    run_id = await start(tk, "linear")
    await tk.drive(run_id)
    assert seen == read == ["workflow:completed"]
    assert all(e.published_at is not None for e in await tk.persistence.outbox_of_run(run_id))
    assert await flush(tk) == 0


async def test_a_failing_plugin_retries_then_dead_letters(script: Script) -> None:
    calls: list[str] = []

    def flaky(event: Event) -> None:
        calls.append(event.type)
        raise RuntimeError("webhook down")

    tk = make_test_kernel(
        *build_workflows(script),
        plugins=[define_plugin(id="hook", on=["workflow:created"], handle=flaky)],
        max_retries=2,
    )
    run_id = await tk.create_run("linear", DOC)
    assert await flush(tk) == 0
    assert await flush(tk) == 0
    event = (await tk.persistence.outbox_of_run(run_id))[0]
    assert event.dlq_at is not None and calls == ["workflow:created"] * 2


def test_plugins_must_name_real_event_types() -> None:
    with pytest.raises(ValueError, match="unknown event types"):
        define_plugin(id="typo", on=["workflow:complete"], handle=lambda e: None)
