"""`drive` skips the maintenance steps the memory adapters say would do nothing
(`wfc.testing.harness._idle_steps`): each answer must be "busy" whenever the step's own
query would find work, or a driven run would miss a poll, a lease reap, a stuck-run
repair or an adoption."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.kernel.conftest import Script, build_workflows
from tests.kernel.helpers import DOC, start, step
from wfc.runtime.adapters.memory import MemoryJobTransport, MemoryPersistence
from wfc.runtime.records import Status
from wfc.testing import TestKernel, make_test_kernel
from wfc.testing.harness import _idle_steps


def _kernel() -> TestKernel:
    return make_test_kernel(*build_workflows(Script()))


def _idle(tk: TestKernel, name: str) -> bool:
    idle = _idle_steps(tk.kernel, tk.settings)
    assert idle is not None  # the memory adapters answer
    return idle(name)


async def test_an_empty_store_is_idle_for_every_skippable_step() -> None:
    tk = _kernel()
    assert [_idle(tk, n) for n in ("poll", "reap_stale", "reap_stuck", "adopt")] == [True] * 4
    assert not _idle(tk, "claim") and not _idle(tk, "flush") and not _idle(tk, "announce")


async def test_a_suspended_stage_is_polled() -> None:
    tk = _kernel()
    run_id = await start(tk, "batch")
    await step(tk)  # `submit` suspends
    stages = await tk.persistence.stages_of_run(run_id)
    assert any(s.status is Status.SUSPENDED for s in stages)
    assert not _idle(tk, "poll")


async def test_a_stale_lease_is_reaped() -> None:
    tk = _kernel()
    await start(tk, "linear")
    jobs = tk.jobs
    assert isinstance(jobs, MemoryJobTransport)
    leased = (await jobs.dequeue())[0]
    assert _idle(tk, "reap_stale")  # leased now: not stale
    jobs.set_locked_at(leased.id, tk.clock.now() - tk.settings.stale_lease_threshold)
    assert _idle(tk, "reap_stale")  # exactly the threshold old: `release_stale` keeps it
    jobs.set_locked_at(leased.id, tk.clock.now() - tk.settings.stale_lease_threshold * 2)
    assert not _idle(tk, "reap_stale")
    assert (await tk.tick()).stale_released == 1


async def test_a_run_idle_past_the_stuck_threshold_is_reaped() -> None:
    tk = _kernel()
    run_id = await start(tk, "linear")
    assert _idle(tk, "reap_stuck")
    tk.clock.advance(tk.settings.stuck_threshold + timedelta(seconds=1))
    assert await tk.persistence.stuck_runs(tk.clock.now() - tk.settings.stuck_threshold)
    assert not _idle(tk, "reap_stuck")
    run = await tk.drive(run_id)
    assert run.status is Status.COMPLETED


async def test_an_open_run_of_another_plan_is_adopted() -> None:
    tk = _kernel()
    run_id = await tk.create_run("linear", DOC)
    persistence = tk.persistence
    assert isinstance(persistence, MemoryPersistence)
    assert _idle(tk, "adopt")
    run = await persistence.get_run(run_id)
    assert run is not None
    await persistence.create_run(replace(run, id="other", plan_fingerprint="an-older-plan"))
    assert not _idle(tk, "adopt")
