"""Work the memory adapters would do for nothing is not done: a kernel on `NoPinning`
dispatches without entering its pin, and the memory store's own writes call one another
directly, not through the port's coroutines (each a cost on every stage)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import BaseModel

from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory import MemoryPersistence, NoPinning
from wfc.runtime.copies import changed
from wfc.runtime.records import StageFence, Status
from wfc.testing import FakeClock, make_test_kernel
from wfc.testing.conformance import a_run, a_stage


class Number(BaseModel):
    n: int


async def add_one(ctx: Any) -> Number:
    return Number(n=ctx.input.n + 1)


def _workflow() -> Any:
    return (
        WorkflowBuilder("pair", "a, b", input=Number)
        .pipe(define_stage(id="a", input=Number, output=Number, execute=add_one))
        .pipe(define_stage(id="b", input=Number, output=Number, execute=add_one))
        .build()
    )


async def test_no_pinning_is_not_entered(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: NoPinning) -> Any:
        raise AssertionError("entered a pin that does nothing")

    tk = make_test_kernel(_workflow())
    monkeypatch.setattr(NoPinning, "pinned", refuse)
    run_id = await tk.create_run("pair", {"n": 0})  # a command dispatched
    assert (await tk.tick()).claimed == 1  # and a tick's
    monkeypatch.undo()  # a host's own steps pin the job they run (`hosts.steps`)
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED


async def test_another_pinning_is_entered_for_each_command() -> None:
    class Counting(NoPinning):
        entered = 0

        def pinned(self) -> Any:
            Counting.entered += 1
            return super().pinned()

    tk = make_test_kernel(_workflow())
    tk.kernel.deps = replace(tk.kernel.deps, pinning=Counting())
    run = await tk.run("pair", {"n": 0})
    assert run.status is Status.COMPLETED
    assert Counting.entered > 0


async def test_the_memory_store_writes_without_its_own_coroutines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("called the port's coroutine from inside the store")

    store = MemoryPersistence()
    run, stage = a_run(FakeClock(), "r"), a_stage(FakeClock(), "r", "a")
    await store.create_run(run)
    for name in ("update_run", "update_stage", "upsert_stage"):
        monkeypatch.setattr(MemoryPersistence, name, refuse)
    claim = await store.claim_next_pending_run()
    assert claim is not None and claim.run.status is Status.RUNNING
    started = changed(stage, {"status": Status.RUNNING, "attempt": 1})
    assert await store.start_stage(started, {}, StageFence.startable(1)) == started
    again = await store.start_stage(started, {"attempt": 2}, StageFence.startable(2))
    assert again is not None and again.version == 2
    locked = await store.lock_run_and_update_stage("r", stage.id, {"status": Status.COMPLETED})
    assert locked is not None and locked[1].status is Status.COMPLETED
