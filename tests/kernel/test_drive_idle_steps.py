"""`drive` skips the maintenance steps the memory adapters say would do nothing
(`wfc.testing.shortcuts.idle_steps`): each answer must be "busy" whenever the step's own
query would find work, or a driven run would miss a poll, a lease reap, a stuck-run
repair or an adoption."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tests.kernel.conftest import Script, build_workflows
from tests.kernel.helpers import DOC, start, step
from wfc.runtime.adapters.memory import MemoryJobTransport, MemoryPersistence
from wfc.runtime.records import Status
from wfc.testing import TestKernel, make_test_kernel, shortcuts
from wfc.testing.shortcuts import idle_steps


def _kernel() -> TestKernel:
    return make_test_kernel(*build_workflows(Script()))


def _idle(tk: TestKernel, name: str) -> bool:
    idle = idle_steps(tk.kernel, tk.settings)
    assert idle is not None  # the memory adapters answer
    return idle(name)


async def test_an_empty_store_is_idle_for_every_skippable_step() -> None:
    tk = _kernel()
    skippable = ("claim", "poll", "reap_stale", "reap_stuck", "adopt")
    assert [_idle(tk, n) for n in skippable] == [True] * 5
    assert not _idle(tk, "flush") and not _idle(tk, "prune")
    assert not _idle(tk, "announce")  # never announced


async def test_a_pending_run_is_claimed() -> None:
    tk = _kernel()
    await tk.create_run("linear", DOC)
    assert not _idle(tk, "claim")
    assert (await tk.tick()).claimed == 1
    assert _idle(tk, "claim")


async def test_an_announcement_is_skipped_only_when_it_would_write_the_same_record() -> None:
    tk = _kernel()
    persistence = tk.persistence
    assert isinstance(persistence, MemoryPersistence)
    await tk.tick()
    announced = persistence.worker(tk.settings.worker_id)
    assert announced is not None
    assert _idle(tk, "announce")  # the clock has not moved: the same record
    tk.clock.advance(timedelta(seconds=1))
    assert not _idle(tk, "announce")  # seen later, expiring later
    await tk.tick()
    assert _idle(tk, "announce")
    await persistence.retire_worker(tk.settings.worker_id)
    assert not _idle(tk, "announce")
    await tk.tick()
    served = tk.settings
    tk.settings = replace(served, queues=(*served.queues, "other"))
    assert not _idle(tk, "announce")  # another queue served
    tk.settings = served
    assert _idle(tk, "announce")
    tk.clock.advance(timedelta(seconds=1))  # seen later, expiring at the same time
    tk.settings = replace(served, presence_ttl=served.presence_ttl - timedelta(seconds=1))
    assert not _idle(tk, "announce")
    tk.kernel.deps.recorded_plans.clear()
    assert not _idle(tk, "announce")  # a plan to store first


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


async def test_the_thresholds_asked_are_those_of_the_settings_of_each_tick() -> None:
    """`idle_steps` keeps the last settings' thresholds (by identity): settings changed
    between ticks are asked with their own."""
    tk = _kernel()
    await start(tk, "linear")
    jobs = tk.jobs
    assert isinstance(jobs, MemoryJobTransport)
    leased = (await jobs.dequeue())[0]
    jobs.set_locked_at(leased.id, tk.clock.now() - timedelta(minutes=2))
    assert _idle(tk, "reap_stale") and _idle(tk, "reap_stuck")  # 5 minutes by default
    served = tk.settings
    tk.settings = replace(served, stale_lease_threshold=timedelta(minutes=1))
    assert not _idle(tk, "reap_stale")
    tk.settings = served
    assert _idle(tk, "reap_stale")
    tk.clock.advance(timedelta(minutes=5, seconds=1))
    assert _idle(tk, "reap_stuck")  # within 15 minutes (three stale thresholds)
    tk.settings = replace(served, stale_lease_threshold=timedelta(seconds=1))
    assert not _idle(tk, "reap_stuck")  # past 5 minutes, its floor


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


async def _driven(scenario: list[str], *, hand: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """What a test sees after driving the runs of `scenario` (created first, driven in
    turn): every delivered event, and every job and stage row."""
    with monkeypatch.context() as patched:
        if not hand:
            patched.setattr(shortcuts, "claim_alone", lambda kernel: False)
        tk = _kernel()
        run_ids = [await tk.create_run(workflow_id, DOC) for workflow_id in scenario]
        for run_id in run_ids:
            await tk.drive(run_id)
    jobs = [(j.run_id, j.stage_id, j.status, j.attempt, j.worker_id) for j in await tk.all_jobs()]
    rows = [
        (s.run_id, s.stage_id, s.status, s.attempt, s.started_at)
        for run_id in run_ids
        for s in await tk.persistence.stages_of_run(run_id)
    ]
    return tk.sink.payloads, jobs, rows


@pytest.mark.parametrize(
    "scenario",
    [["linear"], ["linear", "linear"], ["fanout"], ["batch"], ["linear", "batch"]],
    ids=str,
)
async def test_a_claim_handed_to_drive_is_unobservable(
    scenario: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`drive` hands a claimed run's first job to its loop only when nothing can tell:
    the events (in their order across runs), jobs and stage rows are those of a drive
    that dequeues it."""
    handed = await _driven(scenario, hand=True, monkeypatch=monkeypatch)
    assert handed == await _driven(scenario, hand=False, monkeypatch=monkeypatch)


async def test_the_claim_is_handed_only_alone_and_plain() -> None:
    tk = _kernel()
    await tk.create_run("linear", DOC)
    assert shortcuts.claim_alone(tk.kernel)
    await tk.create_run("linear", DOC)
    assert not shortcuts.claim_alone(tk.kernel)  # another run would be claimed in the tick
    other = _kernel()
    await start(other, "batch")
    await step(other)  # `submit` suspends: its run is open
    await other.create_run("linear", DOC)
    assert not shortcuts.claim_alone(other.kernel)  # a poll could move the other run
