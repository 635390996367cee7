"""The host `run_and_wait` and `wfc run` start for one run: it claims that run before its
first tick, with the first stage handed to a slot, and tells its caller at once when the run
ended, whatever the poll intervals say (on memory, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from tests.hosts.conftest import Backend
from tests.kernel.conftest import Report, Script
from wfc.runtime import RunCreate, Status, WorkerHost, run_and_wait
from wfc.runtime.hosts import make_kernel
from wfc.runtime.plugins import define_plugin

DOC = {"text": "the quick brown fox"}
SLOW = timedelta(seconds=60)  # longer than any test waits: finishing proves it was not polled
WITHIN = timedelta(seconds=20)


def _one_run_host(kernel: Any, worker_id: str, run_id: str, *, concurrency: int) -> WorkerHost:
    """A host serving one run, as `run_and_wait` starts, with no poll or tick of its own
    within any test's time: what it does, its run's claim and commits made it do."""
    return WorkerHost(
        kernel,
        worker_id=worker_id,
        concurrency=concurrency,
        orchestration_interval=SLOW,
        job_poll_interval=SLOW,
        shutdown_grace=timedelta(seconds=5),
        run_id=run_id,
    )


async def test_run_and_wait_returns_as_its_run_ends_not_at_its_next_poll(
    backend: Backend,
) -> None:
    run = await asyncio.wait_for(
        run_and_wait(backend.kernel(), "linear", DOC, poll_interval=SLOW, timeout=WITHIN),
        WITHIN.total_seconds(),
    )
    assert run.status is Status.COMPLETED
    assert run.output == {"summary": "4: the quick brown fox"}


async def test_plugins_hear_of_the_run_s_end_before_run_and_wait_returns(
    backend: Backend,
) -> None:
    """The host stops right after its run ends: its last events are delivered as it stops,
    or a plugin under `wfc run` would never hear `workflow:completed` (no other worker)."""
    heard: list[str] = []
    plugin = define_plugin(
        id="ends", on=["workflow:completed"], handle=lambda event: heard.append(event.type)
    )
    kernel = make_kernel(backend.storage, backend.registry, plugins=[plugin])
    run = await run_and_wait(kernel, "linear", DOC, timeout=WITHIN)
    assert run.status is Status.COMPLETED
    assert heard == ["workflow:completed"]


async def test_run_and_wait_returns_as_its_run_fails_not_at_its_next_poll(
    backend: Backend, script: Script
) -> None:
    from wfc.errors import NonRetryableError

    script.then("count", NonRetryableError("no counting today"))
    run = await asyncio.wait_for(
        run_and_wait(backend.kernel(), "linear", DOC, poll_interval=SLOW, timeout=WITHIN),
        WITHIN.total_seconds(),
    )
    assert run.status is Status.FAILED


async def test_a_one_run_host_claims_its_run_first_and_hands_each_stage_to_a_slot(
    backend: Backend,
) -> None:
    kernel = backend.kernel()
    created = await kernel.dispatch(
        RunCreate(idempotency_key="own-host", workflow_id="linear", input=DOC)
    )
    worker = _one_run_host(kernel, "own-host", created.workflow_run_id, concurrency=2)
    await worker.start()
    try:
        worker.wake_claims()  # as run_and_wait does
        for _ in range(400):
            if worker.stats().jobs_processed == 3:
                break
            await asyncio.sleep(0.05)
        # Every stage came to a slot without a dequeue (the first one with the claim),
        # and no tick ran: with both intervals a minute, only that could have run it.
        assert worker.stats().jobs_succeeded == 3
        assert worker.jobs_taken == 3
        assert worker.orchestrator.ticks == 0
    finally:
        await worker.stop()
    run = await kernel.deps.persistence.get_run(created.workflow_run_id)
    assert run is not None and run.status is Status.COMPLETED


async def test_a_one_run_host_s_flusher_starts_with_a_pause(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `run_and_wait` host starts before its run exists: a flush then finds nothing of its
    run (what other runs left is their workers' to deliver), a statement per call for
    nothing. Its flusher starts with a pause, which its run's first job commit cuts short,
    and its last batch as it stops delivers what is left. (The pause is made a minute
    here, so that a loaded machine cannot end it within the test's look.)"""
    from wfc.runtime.commands import OutboxFlush
    from wfc.runtime.hosts import flusher

    monkeypatch.setattr(flusher, "QUICK", timedelta(seconds=60))

    kernel = backend.kernel()
    flushes: list[OutboxFlush] = []
    dispatch = kernel.dispatch

    async def counted(command: Any) -> Any:
        if isinstance(command, OutboxFlush):
            flushes.append(command)
        return await dispatch(command)

    kernel.dispatch = counted  # type: ignore[method-assign]
    worker = WorkerHost(
        kernel,
        worker_id="one-run",
        concurrency=2,
        orchestration_interval=SLOW,
        job_poll_interval=SLOW,
        run_id=kernel.deps.ids.new_id(),
    )
    worker.before_its_run_exists()
    await worker.start()
    try:
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert flushes == []
    finally:
        await worker.stop()
    assert len(flushes) == 1  # the last batch


async def test_a_plugin_still_hearing_the_run_s_events_as_the_host_stops_hears_each_once(
    backend: Backend, script: Script
) -> None:
    """The host stops while its flusher is still delivering the run's events (a plugin that
    takes its time over each): that delivery is let finish and be marked, not cut off and
    rolled back, which had the host's last batch deliver the same events again."""
    heard: list[str] = []

    async def slow(event: Any) -> None:
        heard.append(f"{event.type} {getattr(event, 'stage_id', '')}".strip())
        await asyncio.sleep(0.2)  # still delivering when `run_and_wait` stops its host

    plugin = define_plugin(
        id="slow-ends", on=["stage:completed", "workflow:completed"], handle=slow
    )

    # The last stage (a body run on a thread) outlasts the first delivery, so the run ends,
    # and the host stops, while the flusher is still giving the plugin the earlier events.
    def late(ctx: Any) -> Report:
        time.sleep(0.3)
        return Report(summary="late")

    script.then("report", late)
    kernel = make_kernel(backend.storage, backend.registry, plugins=[plugin])
    run = await run_and_wait(kernel, "linear", DOC, timeout=WITHIN)
    assert run.status is Status.COMPLETED
    assert len(heard) == len(set(heard)), heard
    assert heard[-1] == "workflow:completed"


async def test_a_hurried_stop_does_not_wait_for_a_plugin_that_hangs(backend: Backend) -> None:
    """A second signal cuts the stop short: the flusher, stuck in a plugin, is cancelled at
    once rather than after `FLUSH_HANDOVER` (5 s); the events it had not marked are
    delivered again by the last batch (at least once), never lost."""
    started = asyncio.Event()
    heard: list[str] = []

    async def hangs_once(event: Any) -> None:
        heard.append(event.type)
        if not started.is_set():
            started.set()
            await asyncio.sleep(3600)

    plugin = define_plugin(id="hangs", on=["stage:completed"], handle=hangs_once)
    kernel = make_kernel(backend.storage, backend.registry, plugins=[plugin])
    created = await kernel.dispatch(
        RunCreate(idempotency_key="hurried", workflow_id="linear", input=DOC)
    )
    worker = _one_run_host(kernel, "hurried", created.workflow_run_id, concurrency=1)
    await worker.start()
    worker.wake_claims()
    await asyncio.wait_for(started.wait(), WITHIN.total_seconds())  # the flusher is stuck
    worker._hurry.set()  # what a second SIGTERM or SIGINT does
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(worker.stop(), WITHIN.total_seconds())
    assert loop.time() - began < 3.0  # not the 5 s handover
    assert heard[0] == "stage:completed" and len(heard) >= 2  # delivered again, not lost
