"""`wfc.testing.work` on the memory queue takes the job a stage's transition queued while
no other job waits straight from the hand-off, rather than dequeuing it.

It is the job the next dequeue would have leased, so what a test observes is
the same (the order stages run in, their events, attempts and the jobs' final
state); the stage starts with the transition that queued it, which saves it a
dequeue, a start transaction and its reads. With other jobs waiting, or under
a taker of the caller's own, `work` dequeues as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.kernel.conftest import Script, build_workflows
from tests.kernel.helpers import DOC
from wfc.runtime.adapters.memory import MemoryJobTransport
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.job_records import JobRecord
from wfc.runtime.records import Status
from wfc.testing import SlotTaker, TestKernel, make_test_kernel

DOC_STAGES = ("split", "count", "report")


@pytest.fixture
def mem() -> TestKernel:
    return make_test_kernel(*build_workflows(Script()))


@pytest.fixture
def dequeued(mem: TestKernel, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The stage ids of the jobs each dequeue leased ("" for a dequeue that found none)."""
    leased: list[str] = []
    jobs = mem.jobs
    assert isinstance(jobs, MemoryJobTransport)
    dequeue = jobs.dequeue

    async def counting(*args: Any, **kwargs: Any) -> list[JobRecord]:
        found = await dequeue(*args, **kwargs)
        leased.extend([job.stage_id for job in found] or [""])
        return found

    monkeypatch.setattr(jobs, "dequeue", counting)
    yield leased


async def _started_stages(tk: TestKernel) -> list[tuple[str, str]]:
    await tk.flush()  # delivered in append order
    return [
        (str(p["workflow_run_id"]), str(p["stage_id"]))
        for p in tk.sink.payloads
        if p["type"] == "stage:started"
    ]


async def test_a_job_queued_while_none_waits_is_taken_without_a_dequeue(
    mem: TestKernel, dequeued: list[str]
) -> None:
    run = await mem.run("linear", DOC)
    assert run.status is Status.COMPLETED
    # `split` was queued by the claim of `drive`'s tick, which runs under `work`'s taker;
    # `count` and `report` by the transitions: all three handed, the one dequeue found none.
    assert dequeued == [""]
    jobs = await mem.all_jobs()
    assert [(j.stage_id, j.status, j.attempt) for j in jobs] == [
        ("split", Status.COMPLETED, 1),
        ("count", Status.COMPLETED, 1),
        ("report", Status.COMPLETED, 1),
    ]
    types = mem.sink.types()
    assert types.count("stage:started") == 3 and types.count("stage:completed") == 3
    stages = await mem.persistence.stages_of_run(run.id)
    assert [(s.stage_id, s.attempt) for s in stages] == [("split", 1), ("count", 1), ("report", 1)]


async def test_with_other_jobs_waiting_the_order_is_the_dequeues(
    mem: TestKernel, dequeued: list[str]
) -> None:
    first = await mem.create_run("linear", DOC)
    second = await mem.create_run("linear", DOC)
    await mem.tick()  # claims both: both `split` jobs wait
    assert await mem.work() == 6
    # Each next stage was queued behind the other run's waiting job: dequeued, in order.
    assert dequeued == ["split", "split", "count", "count", "report", "report", ""]
    assert await _started_stages(mem) == _interleaved(first, second)


async def test_drive_with_other_runs_waiting_keeps_the_dequeue_order(
    mem: TestKernel, dequeued: list[str]
) -> None:
    """`drive`'s tick claims every waiting run; with two pending, neither's first job is
    handed to `work` (only a lone run's is), so both `split`s are dequeued, in order."""
    first = await mem.create_run("linear", DOC)
    second = await mem.create_run("linear", DOC)
    run = await mem.drive(first)
    assert run.status is Status.COMPLETED
    assert dequeued == ["split", "split", "count", "count", "report", "report", ""]
    assert await _started_stages(mem) == _interleaved(first, second)
    jobs = await mem.all_jobs()
    assert [(j.stage_id, j.status, j.attempt) for j in jobs] == [
        (stage, Status.COMPLETED, 1) for _ in (first, second) for stage in DOC_STAGES
    ]


async def test_max_jobs_leaves_the_next_job_queued_not_leased(
    mem: TestKernel, dequeued: list[str]
) -> None:
    run_id = await mem.create_run("linear", DOC)
    await mem.tick()
    assert await mem.work(max_jobs=1) == 1
    count = next(j for j in await mem.all_jobs() if j.stage_id == "count")
    assert count.status is Status.PENDING and count.attempt == 0 and count.worker_id is None
    assert await mem.work() == 2  # count, then report handed
    assert dequeued == ["split", "count", ""]
    run = await mem.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED


async def test_a_taker_of_the_callers_own_gets_the_handed_jobs(mem: TestKernel) -> None:
    await mem.create_run("linear", DOC)
    await mem.tick()
    worker = SlotTaker(1)
    with handing_off_to(worker):
        assert await mem.work() == 1  # split; count goes to `worker`, not to `work`
    assert [job.stage_id for job in worker.taken] == ["count"]
    assert worker.taken[0].status is Status.RUNNING


async def test_a_handed_job_put_back_is_as_it_was_queued(mem: TestKernel) -> None:
    """`MemoryJobTransport.unhand`: the job a dequeue of `work` would not lease (another
    plan's) goes back PENDING at the attempt it was queued with."""
    run_id = await mem.create_run("linear", DOC)
    await mem.tick()
    jobs = mem.jobs
    assert isinstance(jobs, MemoryJobTransport)
    queued = await jobs.jobs_of_run(run_id)
    worker = SlotTaker(1)
    with handing_off_to(worker):
        assert await mem.work() == 1
    handed = worker.taken[0]
    jobs.unhand(handed.id)
    back = next(j for j in await jobs.jobs_of_run(run_id) if j.id == handed.id)
    assert (back.status, back.attempt, back.worker_id, back.locked_at, back.started_at) == (
        Status.PENDING,
        0,
        None,
        None,
        None,
    )
    assert queued[0].attempt == 0  # as `split`'s job was queued
    assert await mem.work() == 2  # count, dequeued; report, handed
    done = next(j for j in await jobs.jobs_of_run(run_id) if j.id == handed.id)
    assert done.status is Status.COMPLETED and done.attempt == 1


async def test_a_job_put_back_is_delivered_again_reading_fresh(
    mem: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan's transition hands `work` one sibling and queues the others, so the handed one
    goes back to the queue; its redelivery, at the same attempt, must not take the warm
    start kept before the other siblings ran (`wfc.runtime.kernel.warm`)."""
    warm = mem.kernel.deps.warm
    take = warm.take
    taken: list[tuple[str, bool]] = []

    def recording(run_id: str, stage_id: str, attempt: int, item: int | None = None) -> Any:
        found = take(run_id, stage_id, attempt, item)
        taken.append((stage_id, found is not None))
        return found

    monkeypatch.setattr(warm, "take", recording)
    run = await mem.run("fanout", DOC)
    assert run.status is Status.COMPLETED
    siblings = [(stage, warm_start) for stage, warm_start in taken if stage in ("upper", "length")]
    assert sorted(stage for stage, _ in siblings) == ["length", "upper"], taken
    assert not any(warm_start for _, warm_start in siblings), taken


def _interleaved(first: str, second: str) -> list[tuple[str, str]]:
    """Two runs' stages started in turn, each stage of the first before the second's."""
    return [(run, stage) for stage in DOC_STAGES for run in (first, second)]
