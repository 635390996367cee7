"""Steps kernel tests share: start a run, execute its next job, read its state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from wfc.plan import RetryPolicy
from wfc.runtime import (
    RunClaimPending,
    RunRecord,
    StageRecord,
    WorkflowBuilder,
    define_stage,
    stage_outputs,
)
from wfc.runtime.commands import JobExecute
from wfc.runtime.hosts import JobOutcome, process_job
from wfc.runtime.job_records import JobRecord
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel

DOC = {"text": "the quick brown fox"}


async def start(tk: TestKernel, workflow_id: str, input: dict[str, object] | None = None) -> str:
    """Create a run and claim it: RUNNING, first group queued."""
    run_id = await tk.create_run(workflow_id, input or DOC)
    await tk.kernel.dispatch(RunClaimPending(worker_id="w1"))
    return run_id


async def step(tk: TestKernel) -> JobOutcome:
    """Lease the next due job and process it as a worker would."""
    leased = await tk.jobs.dequeue()
    assert leased, "no job is due"
    return await process_job(tk.kernel, leased[0])


def execute(job: JobRecord, *, transition: bool = True) -> JobExecute:
    """`job.execute` of a leased job, as a host would dispatch it (without the job's id)."""
    return JobExecute(
        workflow_run_id=job.run_id,
        workflow_id=job.workflow_id,
        stage_id=job.stage_id,
        attempt=job.attempt,
        transition=transition,
    )


async def run_of(tk: TestKernel, run_id: str) -> RunRecord:
    run = await tk.persistence.get_run(run_id)
    assert run is not None
    return run


async def stage_of(tk: TestKernel, run_id: str, stage_id: str) -> StageRecord:
    row = await tk.persistence.get_stage(run_id, stage_id)
    assert row is not None
    return row


async def event_types(tk: TestKernel, run_id: str) -> list[str]:
    """The run's outbox events in sequence order."""
    return [e.event_type for e in await tk.persistence.outbox_of_run(run_id)]


class Item(BaseModel):
    n: int


class Items(BaseModel):
    items: list[Item]


def mapped(
    touch: Callable[[Any], Any], *, at_most: int, retry: RetryPolicy | None = None
) -> Workflow:
    """The workflow `mapped`: its stage `touch` runs once per item of `input.items`."""
    stage = define_stage(
        id="touch",
        input=Item,
        output=Item,
        execute=touch,
        map_over="input.items",
        at_most=at_most,
        retry=retry,
    )
    return WorkflowBuilder("mapped", "Mapped", input=Items).pipe(stage).build()


def note_outputs_made(monkeypatch: pytest.MonkeyPatch, note: Callable[[Any], None]) -> None:
    """Call `note` with every object a stage's context (`StageOutputs`) makes from an output
    as stored: each parse of its JSON text and each copy of its value."""
    for name in ("parse_json", "json_copy"):
        real = getattr(stage_outputs, name)

        def counted(stored: Any, real: Callable[[Any], Any] = real) -> Any:
            value = real(stored)
            note(value)
            return value

        monkeypatch.setattr(stage_outputs, name, counted)
