"""A ghost's outcome (its worker lost the stage: its lease was reaped and another delivery
committed it) rolls its transaction back right after the refused write, and asks why only
then: on PostgreSQL the refused write locked the run's row, and a sibling's outcome waits
for that lock until the ghost's transaction ends (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.kernel.conftest import Script, Words
from tests.kernel.helpers import start, step
from tests.kernel.lock_waits import a_lock_wait
from wfc.runtime import LeaseReapStale, NotReady, Ready, StagePollSuspended
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.persistence import SqlPersistence
from wfc.runtime.hosts import JobOutcome, process_job
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import stage_outcome
from wfc.runtime.records import Status
from wfc.testing import TestKernel


def _late_words(ctx: Any) -> Words:
    return Words(words=["late"])


def _late_failure(ctx: Any) -> Words:
    raise RuntimeError("the late attempt fails")


async def _lease(tk: TestKernel, stage_id: str) -> JobRecord:
    (job,) = await tk.jobs.dequeue()
    assert job.stage_id == stage_id, job
    return job


async def _upper_overtaken(
    tk: TestKernel, script: Script, late_attempt: Callable[[Any], Any]
) -> tuple[str, asyncio.Task[JobOutcome], threading.Event]:
    """`fanout`'s `upper` delivered, then frozen in its body past its lease; the lease
    reaped and a second delivery committing `upper`, while its sibling `length` waits
    in the queue. The run, the frozen delivery (a ghost once it wakes) and what wakes it."""
    gate = threading.Event()

    def frozen(ctx: Any) -> Any:
        assert gate.wait(30)
        return late_attempt(ctx)

    script.then("upper", frozen)
    run_id = await start(tk, "fanout")
    assert (await step(tk)).outcome == "completed"  # split: upper and length queued
    first = await _lease(tk, "upper")
    late = asyncio.create_task(process_job(tk.kernel, first))
    while script.calls["upper"] == 0:
        await asyncio.sleep(0.01)
    tk.clock.advance(timedelta(minutes=10))
    await tk.kernel.dispatch(LeaseReapStale(stale_threshold_ms=60_000))
    second = await _lease(tk, "upper")
    assert second.attempt == 2
    assert (await process_job(tk.kernel, second)).outcome == "completed"
    return run_id, late, gate


def _ghost_transaction(sent: list[str]) -> list[str]:
    """The statements of the first transaction that rolled back, BEGIN to ROLLBACK."""
    end = sent.index("ROLLBACK")
    begin = max(i for i, sql in enumerate(sent[:end]) if sql.startswith("BEGIN"))
    return [" ".join(sql.split()) for sql in sent[begin : end + 1]]


@pytest.mark.parametrize("late_attempt", [_late_words, _late_failure])
async def test_a_ghost_s_transaction_ends_at_its_refused_write(
    tk: TestKernel, script: Script, late_attempt: Callable[[Any], Any]
) -> None:
    """The refused write is the last statement before ROLLBACK: a completion's (the run's
    lock and the stage's write, `lock_run_and_update_stage`) and a failure's
    (`update_stage_while_running`). They used to be followed, with the run's row locked,
    by the store's reads telling a refused write from a missing row (PostgreSQL: the run,
    the stage) and by the kernel's reads of why (the run, its stages). SQLite cannot ask
    for the missing row in the same statement: its one local read of the row's version
    stays, under the file's write lock that every writer waits for anyway."""
    if not isinstance(tk.persistence, SqlPersistence):
        pytest.skip("statements are a SQL store's")
    run_id, late, gate = await _upper_overtaken(tk, script, late_attempt)
    with direct.watching(tk.persistence.engine) as sent:
        gate.set()
        outcome = await late
    assert outcome.outcome == "failed" and "result discarded" in (outcome.error or "")
    ghost = _ghost_transaction(sent)
    if tk.persistence.engine.dialect.name == "sqlite":
        *_, refused, read, rollback = ghost
        assert read == "SELECT stages.version FROM stages WHERE stages.id = ?", ghost
    else:  # BEGIN, the one statement of the run's lock and the stage's write, ROLLBACK
        _, refused, rollback = ghost
    assert "UPDATE stages" in refused and rollback == "ROLLBACK", ghost
    row = await tk.persistence.get_stage(run_id, "upper")
    assert row is not None and (row.status, row.attempt) == (Status.COMPLETED, 2)


async def test_a_sibling_s_outcome_does_not_wait_while_a_ghost_asks_why(
    tk: TestKernel, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: while the ghost finds out why its write was refused (held here at a
    barrier), its sibling's outcome commits and moves the run on. Asked inside the
    ghost's transaction, the sibling waited for the run's row the refused write locked."""
    if not isinstance(tk.persistence, SqlPersistence) or (
        tk.persistence.engine.dialect.name != "postgresql"
    ):
        pytest.skip("row locks are PostgreSQL's")
    asking, answered = asyncio.Event(), asyncio.Event()
    why = stage_outcome.why_refused

    async def held_while_asking(*args: Any) -> str:
        asking.set()
        await answered.wait()
        return await why(*args)

    monkeypatch.setattr(stage_outcome, "why_refused", held_while_asking)
    run_id, late, gate = await _upper_overtaken(tk, script, _late_words)
    gate.set()
    await asyncio.wait_for(asking.wait(), 30)
    sibling = asyncio.create_task(process_job(tk.kernel, await _lease(tk, "length")))
    waiting = asyncio.create_task(a_lock_wait(tk.persistence.engine, sibling))
    try:
        await asyncio.wait([sibling, waiting], return_when=asyncio.FIRST_COMPLETED)
        assert sibling.done(), "the sibling's outcome waited for the ghost's run lock"
        assert (await sibling).outcome == "completed"
    finally:
        waiting.cancel()
        answered.set()
    assert (await late).outcome == "failed"
    (join,) = [row for row in await tk.persistence.stages_of_run(run_id) if row.stage_id == "join"]
    assert join.status is Status.PENDING  # the sibling, last of its group, opened the next


@pytest.mark.parametrize("answer", [NotReady(), Ready(output=Words(words=["late"]))])
async def test_a_ghost_poll_s_transaction_ends_at_its_refused_write(
    tk: TestKernel, script: Script, answer: Any
) -> None:
    """A poller whose claim ran out while it checked, another poller having checked the
    stage since: its "not yet" (`update_stage_while_running`) or its completion (the run's
    lock with the stage's write) is refused, and is the last statement before ROLLBACK."""
    if not isinstance(tk.persistence, SqlPersistence):
        pytest.skip("statements are a SQL store's")
    gate = asyncio.Event()

    async def late(ctx: Any) -> Any:
        await gate.wait()
        return answer

    script.then("check", late, NotReady())
    await start(tk, "batch")
    assert (await step(tk)).outcome == "suspended"
    tk.clock.advance(seconds=30)
    first = asyncio.create_task(tk.kernel.dispatch(StagePollSuspended(claim_ms=60_000)))
    while script.calls["check"] == 0:
        await asyncio.sleep(0.01)
    tk.clock.advance(seconds=61)  # the first claim ran out: the second poller takes it
    assert (await tk.kernel.dispatch(StagePollSuspended())).checked == 1
    with direct.watching(tk.persistence.engine) as sent:
        gate.set()
        assert (await first).resumed == 0
    ghost = _ghost_transaction(sent)
    if tk.persistence.engine.dialect.name == "sqlite":
        *_, refused, read, rollback = ghost
        assert read == "SELECT stages.version FROM stages WHERE stages.id = ?", ghost
    else:
        _, refused, rollback = ghost
    assert "UPDATE stages" in refused and rollback == "ROLLBACK", ghost
