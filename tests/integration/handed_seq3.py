"""A seq3 run whose stages are handed to one slot, with each stage's statements recorded.

Shared by the tests of the one-run-write paths (`test_predicted_commit` on PostgreSQL,
`test_sqlite_run_lock` on SQLite): both drive the same run and differ only in what they
expect each stage to send, so the driving lives here once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from wfc.runtime import StageDefinition, WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory import CollectingEventSink, SequentialIds
from wfc.runtime.adapters.sql import SqlStorage, direct
from wfc.runtime.commands import RunClaimPending, RunCreate
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.kernel import Kernel
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow
from wfc.testing import FakeClock, SlotTaker
from wfc.testing.conformance import Ports


class Number(BaseModel):
    n: int


BEFORE_RETURN: list[Callable[[Any], Awaitable[None]]] = []
"""What a stage does just before it returns; a test appends, its fixture clears."""


async def add_one(ctx: Any) -> Number:
    for action in BEFORE_RETURN:
        await action(ctx)
    return Number(n=ctx.input.n + 1)


def _stage(stage_id: str) -> StageDefinition:
    return define_stage(id=stage_id, input=Number, output=Number, execute=add_one)


def seq3_kernel(store: SqlStorage) -> Kernel:
    """A kernel on `store` that knows one workflow, seq3 (a → b → c, each adding one)."""
    seq3 = (
        WorkflowBuilder("seq3", "Three in a row", input=Number)
        .pipe(_stage("a"))
        .pipe(_stage("b"))
        .pipe(_stage("c"))
        .build()
    )
    return kernel_on(store, seq3)


def kernel_on(store: SqlStorage, workflow: Workflow) -> Kernel:
    """A kernel on `store` knowing `workflow` alone, with a fake clock and sequential ids
    (what these tests' statement counts and names are read against)."""
    return Kernel(
        persistence=store.persistence,
        blobs=store.blobs,
        jobs=store.jobs,
        events=CollectingEventSink(),
        clock=FakeClock(),
        ids=SequentialIds("id"),
        registry=WorkflowMap([workflow]),
        pinning=store.pinning,
        shared_transactions=store.shared_transactions,
    )


def store_ports(store: SqlStorage) -> Ports:
    """The conformance suite's ports on `store`, with the fake clock it was opened with."""
    clock = store.persistence._clock
    assert isinstance(clock, FakeClock)
    return Ports(clock, store.persistence, store.jobs, store.blobs, store.ai_calls)


async def run_handing_on(
    store: SqlStorage, kernel: Kernel, *, outcomes: list[str] | None = None
) -> tuple[str, list[list[str]]]:
    """Create and claim a seq3 run, then run each stage handed to one slot: the run's id and
    the statements of each stage execution (each must complete unless `outcomes` is given,
    which then collects them)."""
    created = await kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="seq3", input={"n": 0})
    )
    taker = SlotTaker(1)
    with handing_off_to(taker):
        await kernel.dispatch(RunClaimPending(worker_id="w"))
    per_stage = []
    while taker.taken:
        (job,), taker.taken = taker.taken, []
        with direct.watching(store.engine) as sent, handing_off_to(taker):
            outcome = await process_job(kernel, job)
        if outcomes is None:
            assert outcome.outcome == "completed"
        else:
            outcomes.append(outcome.outcome)
        per_stage.append(list(sent))
    return created.workflow_run_id, per_stage
