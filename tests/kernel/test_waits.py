"""Durable sleeps and signals on memory, SQLite and PostgreSQL, with a fake clock.

A sleep holds no worker: its stage waits SUSPENDED behind a job due when it wakes,
which a worker started after the one that queued it picks up. A signal completes
the stage waiting for it in its own transaction (and moves the run on), or is kept
for the first stage to wait for it; its timeout is a job that fails the stage or
completes it with null. A signal and a timeout racing give one outcome.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.databases import kernel_on_storage
from tests.kernel.lock_waits import a_lock_wait
from tests.kernel.waiting import HOUR_MS, another_kernel, workflows
from wfc.errors import SignalRefusedError
from wfc.runtime import RunCancel, RunClaimPending
from wfc.runtime.adapters.sql.persistence import SqlPersistence
from wfc.runtime.commands import RunReapStuck, RunReapStuckResult, RunSignal, RunSignalResult
from wfc.runtime.hosts import process_job
from wfc.runtime.hosts.run_and_wait import signal_run
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import execute as execute_module
from wfc.runtime.kernel import signals as signals_module
from wfc.runtime.records import RunRecord, StageRecord, Status
from wfc.testing import TestKernel, work

YES = {"approved": True, "by": "ann"}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    async with kernel_on_storage(request.param, workflows(), tmp_path) as kernel:
        yield kernel


async def _started(tk: TestKernel, workflow_id: str, **input: Any) -> str:
    """A run whose first stage ran: its built-in stage is waiting."""
    run_id = await tk.create_run(workflow_id, {"text": "hello", **input})
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1"))
    assert await tk.work() == 1
    return run_id


async def _row(tk: TestKernel, run_id: str, stage_id: str) -> StageRecord:
    row = await tk.persistence.get_stage(run_id, stage_id)
    assert row is not None
    return row


async def _run(tk: TestKernel, run_id: str) -> RunRecord:
    run = await tk.persistence.get_run(run_id)
    assert run is not None
    return run


async def _jobs(tk: TestKernel, run_id: str, stage_id: str) -> list[JobRecord]:
    return [job for job in await tk.jobs.jobs_of_run(run_id) if job.stage_id == stage_id]


async def _signal(tk: TestKernel, run_id: str, payload: Any = YES, **more: Any) -> RunSignalResult:
    return await tk.kernel.dispatch(
        RunSignal(workflow_run_id=run_id, name=more.pop("name", "approve"), payload=payload, **more)
    )


async def _output(tk: TestKernel, run_id: str, stage_id: str) -> Any:
    row = await _row(tk, run_id, stage_id)
    assert row.output_ref is not None
    return json.loads(await tk.blobs.get(row.output_ref))


# -- sleep ---------------------------------------------------------------------------


async def test_a_sleep_wakes_at_its_time_not_before_and_outlives_its_worker(
    tk: TestKernel,
) -> None:
    run_id = await _started(tk, "sleepy")
    opened = tk.clock.now()
    nap = await _row(tk, run_id, "nap")
    wakes = opened + timedelta(seconds=60)
    assert nap.status is Status.SUSPENDED and nap.next_poll_at is None
    assert nap.suspended_state == {"sleep_until": wakes.isoformat()}
    assert nap.max_wait_until == wakes
    [timer] = await _jobs(tk, run_id, "nap")
    assert (timer.status, timer.run_at) == (Status.PENDING, wakes)

    tk.clock.advance(seconds=59.999)
    assert await tk.work() == 0
    reaped = await tk.kernel.dispatch(RunReapStuck(stuck_threshold_ms=1000))
    assert reaped == RunReapStuckResult()  # a sleeping run is not stuck
    assert (await _row(tk, run_id, "nap")).status is Status.SUSPENDED

    tk.clock.set(wakes)  # a new worker on the same storage: the timer is in the database
    restarted = another_kernel(tk, workflows(), "restarted")
    assert await work(restarted) == 2  # the nap, then the stage after it
    assert (await _run(tk, run_id)).status is Status.COMPLETED
    assert await _output(tk, run_id, "nap") == {"woke_at": wakes.isoformat()}
    assert (await _output(tk, run_id, "after"))["summary"] == f"HELLO after {wakes.isoformat()}"


async def test_a_sleep_until_an_instant_of_the_input_and_a_broken_one() -> None:
    from tests.kernel.waiting import sleepy
    from wfc.plan import SleepSpec
    from wfc.testing import make_test_kernel

    tk = make_test_kernel(sleepy(SleepSpec(until=("input", "at"))))
    at = tk.clock.now() + timedelta(hours=2)
    run_id = await _started(tk, "sleepy", at=at.replace(tzinfo=None).isoformat())  # naive: UTC
    [timer] = await _jobs(tk, run_id, "nap")
    assert timer.run_at == at
    finished = await tk.drive(run_id)
    assert finished.status is Status.COMPLETED and tk.clock.now() == at

    broken = await _started(tk, "sleepy", at="tomorrow")
    run = await _run(tk, broken)
    assert run.status is Status.FAILED and run.error is not None
    assert run.error["code"] == "SLEEP_FAILED" and "'tomorrow'" in run.error["message"]


# -- signals -------------------------------------------------------------------------


async def test_a_signal_completes_the_waiting_stage_in_its_own_commit(tk: TestKernel) -> None:
    run_id = await _started(tk, "approval")
    approve = await _row(tk, run_id, "approve")
    assert approve.status is Status.SUSPENDED
    assert approve.suspended_state is not None
    assert approve.suspended_state["signal"] == "approve"
    assert approve.max_wait_until == tk.clock.now() + timedelta(milliseconds=HOUR_MS)
    [timer] = await _jobs(tk, run_id, "approve")
    assert timer.run_at == approve.max_wait_until

    tk.clock.advance(minutes=5)
    sent = await _signal(tk, run_id, idempotency_key="ann-1")
    assert sent.delivered_to == "approve" and not sent.duplicate
    assert sent.transition is not None and sent.transition.action == "advanced"
    assert await _output(tk, run_id, "approve") == YES
    [timer] = await _jobs(tk, run_id, "approve")
    assert timer.status is Status.COMPLETED  # the timeout will not fire
    [publish] = await _jobs(tk, run_id, "publish")
    assert publish.status is Status.PENDING  # queued in the signal's commit
    assert await tk.work() == 1
    assert (await _run(tk, run_id)).output == {"summary": "approved by ann"}
    [kept] = await tk.persistence.signals_of_run(run_id)
    assert kept.consumed_by == approve.id and kept.consumed_at == tk.clock.now()

    again = await _signal(tk, run_id, idempotency_key="ann-1")  # the run finished meanwhile
    assert again.duplicate and again.signal_id == sent.signal_id
    assert again.delivered_to == "approve"


async def test_a_signal_sent_before_the_wait_is_taken_as_it_opens(tk: TestKernel) -> None:
    run_id = await tk.create_run("patient", {"text": "early"})  # still PENDING
    first = await _signal(tk, run_id, {"approved": False, "by": "bob"})
    second = await _signal(tk, run_id, YES)
    assert (first.delivered_to, second.delivered_to) == (None, None)
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1"))
    assert await tk.work() == 2  # draft, whose commit opens approve completed, then publish
    run = await _run(tk, run_id)
    assert run.status is Status.COMPLETED
    assert run.output == {"summary": "refused by bob"}  # the first one sent
    taken = {s.id: s.consumed_by for s in await tk.persistence.signals_of_run(run_id)}
    assert taken == {
        first.signal_id: (await _row(tk, run_id, "approve")).id,
        second.signal_id: None,
    }
    assert await _jobs(tk, run_id, "approve") == []  # no timer for a wait done as it opened


async def test_a_signal_after_its_wait_is_kept_and_a_finished_run_refuses_them(
    tk: TestKernel,
) -> None:
    run_id = await _started(tk, "lenient")
    tk.clock.advance(milliseconds=HOUR_MS)
    assert await tk.work(max_jobs=1) == 1  # the timeout: the wait completes with null
    assert await _output(tk, run_id, "approve") is None
    late = await _signal(tk, run_id)  # publish is queued, not run: the run still runs
    assert late.delivered_to is None and late.transition is None
    assert await tk.work() == 1
    run = await _run(tk, run_id)
    assert (run.status, run.output) == (Status.COMPLETED, {"summary": "nobody answered"})
    with pytest.raises(SignalRefusedError, match="COMPLETED: a finished run takes no signals"):
        await _signal(tk, run_id, idempotency_key="too-late")


async def test_a_timeout_that_fails_fails_the_run_once(tk: TestKernel) -> None:
    run_id = await _started(tk, "approval")
    tk.clock.advance(milliseconds=HOUR_MS - 1)
    assert await tk.work() == 0
    tk.clock.advance(milliseconds=1)
    assert await tk.work() == 1
    run = await _run(tk, run_id)
    assert run.status is Status.FAILED and run.error is not None
    assert run.error["stage_id"] == "approve"
    assert run.error["message"].startswith("SignalTimeout: Stage approve waited 3600000 ms")
    [timer] = await _jobs(tk, run_id, "approve")
    assert (timer.status, timer.attempt) == (Status.FAILED, 1)  # not retried


async def test_a_signal_while_the_timeout_runs_is_kept_not_delivered(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeout's delivery started the stage (SUSPENDED → RUNNING) before the signal's
    fenced write: the signal finds it no longer waiting, and is kept."""
    run_id = await _started(tk, "approval")
    tk.clock.advance(milliseconds=HOUR_MS)
    sent: list[RunSignalResult] = []
    finish = execute_module._phase_finish

    async def signal_then_finish(ex: Any) -> Any:
        sent.append(await _signal(tk, run_id))  # after the timeout's start committed
        return await finish(ex)

    monkeypatch.setattr(execute_module, "_phase_finish", signal_then_finish)
    [leased] = await tk.jobs.dequeue(plans=tk.registry.plans())
    await process_job(tk.kernel, leased)
    [result] = sent
    assert result.delivered_to is None
    assert (await _row(tk, run_id, "approve")).status is Status.FAILED
    assert (await _run(tk, run_id)).status is Status.FAILED
    [kept] = await tk.persistence.signals_of_run(run_id)
    assert kept.consumed_by is None


async def test_a_signal_that_read_the_wait_before_its_timeout_started_writes_nothing(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal read the stage SUSPENDED, then the timeout's delivery started it: the
    signal's fenced write finds the row moved on, and the signal is kept for later."""
    run_id = await _started(tk, "approval")
    as_read = [await _row(tk, run_id, "approve")]  # what the signal's first read returns
    waiting_for = signals_module._waiting_for

    def stale_once(workflow: Any, rows: Any, name: str) -> Any:
        return as_read.pop() if as_read else waiting_for(workflow, rows, name)

    tk.clock.advance(milliseconds=HOUR_MS)
    sent: list[RunSignalResult] = []
    finish = execute_module._phase_finish

    async def signal_then_finish(ex: Any) -> Any:
        monkeypatch.setattr(signals_module, "_waiting_for", stale_once)
        sent.append(await _signal(tk, run_id))
        return await finish(ex)

    monkeypatch.setattr(execute_module, "_phase_finish", signal_then_finish)
    [leased] = await tk.jobs.dequeue(plans=tk.registry.plans())
    await process_job(tk.kernel, leased)
    assert not as_read and sent[0].delivered_to is None
    assert (await _row(tk, run_id, "approve")).status is Status.FAILED
    [kept] = await tk.persistence.signals_of_run(run_id)
    assert kept.consumed_by is None


async def test_a_timeout_due_as_the_signal_comes_finds_the_stage_done(tk: TestKernel) -> None:
    """The timeout's job was leased, then the signal was delivered: the delivery finds the
    stage completed and writes nothing."""
    run_id = await _started(tk, "approval")
    tk.clock.advance(milliseconds=HOUR_MS)
    [leased] = await tk.jobs.dequeue(plans=tk.registry.plans())
    sent = await _signal(tk, run_id)
    assert sent.delivered_to == "approve"
    outcome = await process_job(tk.kernel, leased)
    assert outcome.outcome == "completed"  # the stage's one outcome: the signal's
    assert await _output(tk, run_id, "approve") == YES
    assert await tk.work() == 1
    assert (await _run(tk, run_id)).status is Status.COMPLETED
    await tk.flush()
    completed = [
        e
        for e in await tk.all_outbox()
        if e.event_type == "stage:completed" and e.payload.get("stage_id") == "approve"
    ]
    assert len(completed) == 1


async def test_a_signal_and_a_timeout_racing_give_one_outcome(tk: TestKernel) -> None:
    run_id = await _started(tk, "lenient")
    tk.clock.advance(milliseconds=HOUR_MS)
    [leased] = await tk.jobs.dequeue(plans=tk.registry.plans())
    sent, _ = await asyncio.gather(_signal(tk, run_id), process_job(tk.kernel, leased))
    output = await _output(tk, run_id, "approve")
    [kept] = await tk.persistence.signals_of_run(run_id)
    if sent.delivered_to == "approve":
        assert output == YES and kept.consumed_by is not None
    else:
        assert output is None and kept.consumed_by is None
    await tk.work()
    assert (await _run(tk, run_id)).status is Status.COMPLETED


async def test_a_signal_waits_for_the_runs_lock_before_it_writes_the_waiting_stage(
    tmp_path: Path,
) -> None:
    """PostgreSQL: a transaction that locks the run's row and then writes the waiting
    stage's (the order a timeout's start, an outcome and `run.cancel` take them in) and a
    signal sent meanwhile: the signal waits for the run's row before it touches the stage,
    so both commit, and it finds the stage started. Had the signal written the stage first,
    each would wait for the other and PostgreSQL would kill one ("deadlock detected")."""
    async with kernel_on_storage("postgres", workflows(), tmp_path) as tk:
        assert isinstance(tk.persistence, SqlPersistence)
        run_id = await _started(tk, "approval")
        waiting = await _row(tk, run_id, "approve")
        async with tk.persistence.transaction() as tx:
            await tx.update_run(run_id, {})  # the run's lock, held
            sending = asyncio.ensure_future(_signal(tk, run_id))
            await a_lock_wait(tk.persistence.engine, sending)
            await tx.update_stage(waiting.id, {"status": Status.RUNNING, "attempt": 1})
        sent = await asyncio.wait_for(sending, 30)
        assert sent.delivered_to is None  # the stage was no longer waiting: kept
        [kept] = await tk.persistence.signals_of_run(run_id)
        assert kept.consumed_by is None
        assert (await _row(tk, run_id, "approve")).status is Status.RUNNING


async def test_duplicate_keys_deliver_once_and_a_reused_key_is_refused(tk: TestKernel) -> None:
    run_id = await _started(tk, "patient")
    first = await _signal(tk, run_id, idempotency_key="k")
    again = await _signal(tk, run_id, idempotency_key="k")
    assert again == first.model_copy(update={"duplicate": True, "transition": None})
    assert len(await tk.persistence.signals_of_run(run_id)) == 1
    with pytest.raises(
        SignalRefusedError, match="'k' was used for signal 'approve' with a different payload"
    ):
        await _signal(tk, run_id, {"approved": False, "by": "x"}, idempotency_key="k")


async def test_refusals_name_the_run_the_signal_and_the_fields() -> None:
    from wfc.errors import InvalidSignalPayloadError
    from wfc.testing import make_test_kernel

    tk = make_test_kernel(*workflows())
    run_id = await _started(tk, "approval")
    with pytest.raises(SignalRefusedError, match="Cannot signal run nope: no such run"):
        await _signal(tk, "nope")
    with pytest.raises(
        SignalRefusedError, match=r"declares no signal 'aprove' \(signals: approve\)"
    ):
        await _signal(tk, run_id, name="aprove")
    with pytest.raises(InvalidSignalPayloadError) as bad:
        await _signal(tk, run_id, {"approved": "yes", "who": "ann"})
    assert bad.value.problems == [
        "by: required",
        "approved: expected boolean, got string",
        "who: not a field of the payload (fields: approved, by)",
    ]
    assert await tk.persistence.signals_of_run(run_id) == []
    # Data JSON cannot hold, refused as the command is made, on every store alike (the
    # memory store took a datetime a SQL store refused at its insert).
    with pytest.raises(ValidationError, match="payload"):
        RunSignal(
            workflow_run_id=run_id,
            name="approve",
            payload={"approved": True, "by": "ann", "at": datetime(2024, 1, 1, tzinfo=UTC)},
        )
    # Through `signal_run`, the same refusals are `InvalidSignalPayloadError`, with the field.
    for payload, problem in (
        ({"approved": True, "by": "ann", "at": datetime(2024, 1, 1, tzinfo=UTC)}, "at"),
        ({"approved": True, "by": "a\x00b"}, r"payload.by: U\+0000"),
        ({"approved": True, "by": "ann", "score": float("nan")}, "nan"),
    ):
        with pytest.raises(InvalidSignalPayloadError, match=problem):
            await signal_run(tk.kernel, run_id, "approve", payload)
    assert await tk.persistence.signals_of_run(run_id) == []
    await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id))
    with pytest.raises(SignalRefusedError, match="it is CANCELLED"):
        await _signal(tk, run_id)


async def test_cancelling_a_run_cancels_its_timers(tk: TestKernel) -> None:
    sleeping = await _started(tk, "sleepy")
    waiting = await _started(tk, "approval")
    for run_id, stage_id in ((sleeping, "nap"), (waiting, "approve")):
        await tk.kernel.dispatch(RunCancel(workflow_run_id=run_id))
        assert (await _row(tk, run_id, stage_id)).status is Status.CANCELLED
        [timer] = await _jobs(tk, run_id, stage_id)
        assert timer.status is Status.CANCELLED
    tk.clock.advance(days=1)
    assert await tk.work() == 0


async def test_a_process_serving_no_workflow_delivers_and_moves_the_run_on(
    tk: TestKernel,
) -> None:
    """`wfc runs signal` serves no workflow: it reads the run's stored plan."""
    run_id = await _started(tk, "approval")
    cli = another_kernel(tk, [], "cli")
    sent = await cli.dispatch(RunSignal(workflow_run_id=run_id, name="approve", payload=YES))
    assert sent.delivered_to == "approve"
    assert sent.transition is not None and sent.transition.action == "advanced"
    assert await tk.work() == 1
    assert (await _run(tk, run_id)).status is Status.COMPLETED


async def test_signal_run_sends_a_payload_model_as_its_json_dump(tk: TestKernel) -> None:
    """The generated `<Signal>Payload` models are what Python code sends: `signal_run` takes
    one as it is (a model with a datetime dumps it as text, JSON data)."""

    class Approve(BaseModel):
        approved: bool
        by: str

    run_id = await _started(tk, "approval")
    sent = await signal_run(tk.kernel, run_id, "approve", Approve(approved=True, by="ann"))
    assert sent.delivered_to == "approve"
    assert await _output(tk, run_id, "approve") == YES
