"""PostgreSQL: every transaction that writes a run's row and one of its stages' locks the
run's row first (docs/discussions.md, "Lock order on PostgreSQL, every path").

Each test holds the run's row lock in a transaction of its own (as a stage's start, an
outcome or `run.cancel` holds it), starts the path under test, waits until that path
waits for the lock, and then writes the stage row the path would take second, as the
competing writer does next. A path that locks the run first waits with nothing held, so
both commit; one that took the stage first would wait for the run while the test waits
for the stage, and PostgreSQL would kill one of the two ("deadlock detected").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import kernel_on_storage
from tests.kernel.helpers import execute, run_of, stage_of, start
from tests.kernel.lock_waits import a_lock_wait
from wfc.errors import RerunRefusedError
from wfc.plan import RetryPolicy
from wfc.runtime import (
    NotReady,
    RunRerunFrom,
    StagePollSuspended,
    Suspend,
    WorkflowBuilder,
    define_stage,
)
from wfc.runtime.adapters.sql.persistence import SqlPersistence
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel


class Note(BaseModel):
    text: str


class Gate:
    """A stage body that waits for the test: `entered` once it runs, `opened` to go on."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()


def _workflows(gate: Gate) -> list[Workflow]:
    """`gated`: one stage that fails once the gate opens (no retry); `pair`: two stages;
    `polled`: an async stage whose checks report progress and are never ready."""

    async def fails_when_let(ctx: Any) -> Note:
        gate.entered.set()
        await gate.opened.wait()
        raise RuntimeError("failed while the test holds the run's lock")

    def echo(ctx: Any) -> Note:
        return Note(text=ctx.input.text)

    once = RetryPolicy(max_attempts=1)
    gated = (
        WorkflowBuilder("gated", "Gated", input=Note)
        .pipe(define_stage(id="work", input=Note, output=Note, execute=fails_when_let, retry=once))
        .build()
    )
    pair = (
        WorkflowBuilder("pair", "Pair", input=Note)
        .pipe(define_stage(id="first", input=Note, output=Note, execute=echo))
        .pipe(define_stage(id="second", input=Note, output=Note, execute=echo))
        .build()
    )
    polled = (
        WorkflowBuilder("polled", "Polled", input=Note)
        .pipe(
            define_stage(
                id="wait",
                input=Note,
                output=Note,
                execute=lambda ctx: Suspend(state={}),
                check_completion=_half_done,
            )
        )
        .build()
    )
    return [gated, pair, polled]


def _half_done(state: dict[str, Any], ctx: Any) -> NotReady:
    ctx.progress(0.5, "half")  # an event: the "not yet" writes the run's row after the stage's
    return NotReady()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def pg(gate: Gate, tmp_path: Path) -> AsyncIterator[TestKernel]:
    async with kernel_on_storage("postgres", _workflows(gate), tmp_path) as tk:
        assert isinstance(tk.persistence, SqlPersistence)
        yield tk


async def test_a_stage_outcome_waits_for_the_runs_lock_before_it_writes_its_stage(
    pg: TestKernel, gate: Gate
) -> None:
    """`stage_outcome.commit_outcome` (a failure here; a suspension and a completion
    without transition write the same way): its guarded write locks the run's row in the
    statement that writes the stage. It read the run unlocked and locked it only with its
    events (`outbox.append`), after the stage: against a cancel (run, then stage) that
    was a deadlock."""
    assert isinstance(pg.persistence, SqlPersistence)
    run_id = await start(pg, "gated", {"text": "x"})
    (job,) = await pg.jobs.dequeue()
    outcome = asyncio.ensure_future(pg.kernel.dispatch(execute(job)))
    await asyncio.wait_for(gate.entered.wait(), 30)
    row = await stage_of(pg, run_id, "work")
    async with pg.persistence.transaction() as tx:
        await tx.update_run(run_id, {})  # the run's lock, held
        gate.opened.set()
        await a_lock_wait(pg.persistence.engine, outcome)
        await tx.update_stage(row.id, {"status": Status.CANCELLED})  # as a cancel writes it
    result = await asyncio.wait_for(outcome, 30)
    assert result.ghost  # the stage was no longer this delivery's: its outcome discarded
    assert (await stage_of(pg, run_id, "work")).status is Status.CANCELLED


async def test_a_rerun_locks_the_run_before_it_deletes_its_stages(pg: TestKernel) -> None:
    """`rerun.restart_from` (a rerun, and a migration with --from): it deleted the stages
    to run again, then wrote the run. It now writes the run first, at the version read, so
    a run that moved meanwhile refuses the rerun rather than deadlocking with its writer."""
    assert isinstance(pg.persistence, SqlPersistence)
    run_id = await pg.create_run("pair", {"text": "x"})
    assert (await pg.drive(run_id)).status is Status.COMPLETED
    second = await stage_of(pg, run_id, "second")
    rerun = RunRerunFrom(workflow_run_id=run_id, from_stage_id="second")
    async with pg.persistence.transaction() as tx:
        await tx.update_run(run_id, {})  # the run's lock, held
        rerunning = asyncio.ensure_future(pg.kernel.dispatch(rerun))
        await a_lock_wait(pg.persistence.engine, rerunning)
        await tx.update_stage(second.id, {})  # a writer of the run, at its stage now
    with pytest.raises(RerunRefusedError, match="moved on while being rerun"):
        await asyncio.wait_for(rerunning, 30)
    assert (await stage_of(pg, run_id, "second")).id == second.id  # not deleted
    assert (await run_of(pg, run_id)).status is Status.COMPLETED
    again = await pg.kernel.dispatch(rerun)  # nothing holds it now: the rerun goes ahead
    assert again.deleted_stages == ["second"]


async def test_a_not_ready_check_s_progress_waits_for_the_runs_lock_first(pg: TestKernel) -> None:
    """`poll._persist` of a "not yet" whose check reported progress: the stage's guarded
    write locks the run's row before the stage's, so the events it appends next (which
    write the run's row) cannot leave it holding the stage while it waits for the run."""
    assert isinstance(pg.persistence, SqlPersistence)
    run_id = await start(pg, "polled", {"text": "x"})
    (job,) = await pg.jobs.dequeue()
    assert (await pg.kernel.dispatch(execute(job))).outcome == "suspended"
    row = await stage_of(pg, run_id, "wait")
    pg.clock.advance(seconds=60)
    async with pg.persistence.transaction() as tx:
        await tx.update_run(run_id, {})  # the run's lock, held
        polling = asyncio.ensure_future(pg.kernel.dispatch(StagePollSuspended()))
        await a_lock_wait(pg.persistence.engine, polling)
        await tx.update_stage(row.id, {"status": Status.CANCELLED})  # as a cancel writes it
    result = await asyncio.wait_for(polling, 30)
    assert (result.checked, result.resumed) == (1, 0)  # its claim was overtaken: a ghost
    assert (await stage_of(pg, run_id, "wait")).status is Status.CANCELLED
    assert "stage:progress" not in [
        e.event_type for e in await pg.persistence.outbox_of_run(run_id)
    ]
