"""The fencing part of the port conformance suite: writes that land only for their owner.

A stage's outcome, start and poll, and a job's completion, failure, suspension
and heartbeat, each carry what the writer last knew it owned (`StageFence`,
a job's delivery `attempt`); an adapter writes them only while that still
holds, so a worker paused past its lease or a second poller changes nothing.
Subclass `FencingConformance` beside `PortConformance`, with the same `ports`
fixture:

```python
class TestMyAdapters(PortConformance, FencingConformance): ...
```
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from wfc.errors import RecordNotFoundError
from wfc.runtime.records import StageFence, StageRecord, Status
from wfc.testing.conformance import Ports, a_job, a_run, a_stage


async def _running_stage(ports: Ports, attempt: int = 1) -> StageRecord:
    """Run `r1` RUNNING, its stage `a` RUNNING for delivery `attempt`."""
    p = ports.persistence
    await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
    row = a_stage(ports.clock, "r1", "a")
    return await p.upsert_stage(replace(row, status=Status.RUNNING, attempt=attempt), {})


async def _suspended(ports: Ports, *stage_ids: str) -> None:
    """Run `r1` RUNNING, with these stages SUSPENDED and due now."""
    p = ports.persistence
    await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
    for number, stage_id in enumerate(stage_ids, start=1):
        row = await p.upsert_stage(a_stage(ports.clock, "r1", stage_id, number=number), {})
        changes = {"status": Status.SUSPENDED, "next_poll_at": ports.clock.now()}
        await p.update_stage(row.id, changes)  # type: ignore[arg-type]


class FencingConformance:
    """Fenced writes: each lands for its owner and changes nothing for anyone else."""

    async def test_an_outcome_lands_only_for_the_delivery_that_owns_the_stage(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        row = await _running_stage(ports, attempt=2)
        late = StageFence.running(1)  # a delivery whose lease was taken over
        assert await p.update_stage_while_running(row.id, "r1", {"error": "x"}, fence=late) is None
        async with p.transaction() as tx:
            assert (
                await tx.lock_run_and_update_stage("r1", row.id, {"error": "x"}, fence=late) is None
            )
        assert await p.get_stage("r1", "a") == row
        done = await p.update_stage_while_running(
            row.id, "r1", {"status": Status.COMPLETED}, fence=StageFence.running(2)
        )
        assert done is not None and done.status is Status.COMPLETED
        again = StageFence.running(2)  # the same delivery, after its outcome committed
        assert await p.update_stage_while_running(row.id, "r1", {"error": "y"}, fence=again) is None
        async with p.transaction() as tx:
            assert (
                await tx.lock_run_and_update_stage("r1", row.id, {"error": "y"}, fence=again)
                is None
            )
        assert await p.get_stage("r1", "a") == done

    async def test_a_locked_outcome_is_written_when_its_fence_holds(self, ports: Ports) -> None:
        p = ports.persistence
        row = await _running_stage(ports)
        async with p.transaction() as tx:
            locked = await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED}, fence=StageFence.running(1)
            )
        assert locked is not None
        run, written = locked
        assert (run.version, written.status, written.version) == (2, Status.COMPLETED, 2)
        with pytest.raises(RecordNotFoundError):
            async with p.transaction() as tx:
                await tx.lock_run_and_update_stage(
                    "r1", "r1/missing", {"error": "x"}, fence=StageFence.running(1)
                )

    async def test_a_stage_is_started_by_newer_deliveries_only_and_never_once_finished(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        fresh = a_stage(ports.clock, "r1", "a")

        def start(attempt: int) -> tuple[StageRecord, dict[str, object], StageFence]:
            changes = {"status": Status.RUNNING, "attempt": attempt}
            return (
                replace(fresh, status=Status.RUNNING, attempt=attempt),
                changes,
                (StageFence.startable(attempt)),
            )

        created = await p.start_stage(*start(1))  # type: ignore[arg-type]
        assert created is not None and (created.status, created.attempt) == (Status.RUNNING, 1)
        assert await p.start_stage(*start(1)) is None  # type: ignore[arg-type]
        taken = await p.start_stage(*start(3))  # type: ignore[arg-type]
        assert taken is not None and (taken.attempt, taken.version) == (3, 2)
        assert await p.start_stage(*start(2)) is None  # type: ignore[arg-type]
        await p.update_stage(taken.id, {"status": Status.COMPLETED})
        assert await p.start_stage(*start(4)) is None  # type: ignore[arg-type]
        current = await p.get_stage("r1", "a")
        assert current is not None and (current.status, current.attempt) == (Status.COMPLETED, 3)

    async def test_a_locked_start_is_fenced_as_a_start_and_only_in_a_running_run(
        self, ports: Ports
    ) -> None:
        """`lock_run_and_start_stage`: the run's lock (its version bumped) with the start,
        which lands as `start_stage` would, and never in a run that stopped running."""
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        fresh = a_stage(ports.clock, "r1", "a")

        def start(attempt: int) -> tuple[str, StageRecord, dict[str, object], StageFence]:
            changes = {"status": Status.RUNNING, "attempt": attempt}
            row = replace(fresh, status=Status.RUNNING, attempt=attempt)
            return "r1", row, changes, StageFence.startable(attempt)

        async with p.transaction() as tx:
            run, created = await tx.lock_run_and_start_stage(*start(1))  # type: ignore[arg-type]
        assert run.version == 2 and run.status is Status.RUNNING
        assert created is not None and (created.status, created.attempt) == (Status.RUNNING, 1)
        async with p.transaction() as tx:
            run, refused = await tx.lock_run_and_start_stage(*start(1))  # type: ignore[arg-type]
        assert (run.version, refused) == (3, None)
        async with p.transaction() as tx:
            run, taken = await tx.lock_run_and_start_stage(*start(2))  # type: ignore[arg-type]
        assert taken is not None and (taken.id, taken.attempt, taken.version) == (created.id, 2, 2)
        await p.update_run("r1", {"status": Status.CANCELLED})
        async with p.transaction() as tx:
            run, stopped = await tx.lock_run_and_start_stage(*start(3))  # type: ignore[arg-type]
        assert (run.status, stopped) == (Status.CANCELLED, None)
        assert await p.get_stage("r1", "a") == taken
        with pytest.raises(RecordNotFoundError):
            async with p.transaction() as tx:
                await tx.lock_run_and_start_stage("r9", *start(1)[1:])  # type: ignore[arg-type]

    async def test_a_due_suspended_stage_is_claimed_by_one_poller_until_its_claim_ends(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await _suspended(ports, "a", "b")
        now = ports.clock.now()
        until = now + timedelta(minutes=5)
        claimed = await p.claim_suspended_stages(now, until, 10)
        assert sorted(row.stage_id for row in claimed) == ["a", "b"]
        assert all(row.next_poll_at == until and row.version == 3 for row in claimed)
        assert await p.claim_suspended_stages(now, until, 10) == []
        assert await p.claim_suspended_stages(until - timedelta(seconds=1), until, 10) == []
        (first,) = await p.claim_suspended_stages(until, until + timedelta(minutes=5), 1)
        # The first claim's holder lost it: a write fenced on its version lands nowhere.
        lost = StageFence.polled(3)
        for stage_id in ("a", "b"):
            row = await p.get_stage("r1", stage_id)
            assert row is not None
            fence = lost if row.id != first.id else StageFence.polled(first.version)
            if row.id == first.id:
                assert (
                    await p.update_stage_while_running(row.id, "r1", {"error": "old"}, fence=lost)
                    is None
                )
            written = await p.update_stage_while_running(
                row.id, "r1", {"next_poll_at": until}, fence=fence
            )
            assert written is not None

    async def test_racing_pollers_claim_each_due_stage_once(self, ports: Ports) -> None:
        p = ports.persistence
        await _suspended(ports, *(f"s{n}" for n in range(8)))
        now = ports.clock.now()
        until = now + timedelta(minutes=5)
        batches = await asyncio.gather(*(p.claim_suspended_stages(now, until, 3) for _ in range(6)))
        claimed = [row.stage_id for batch in batches for row in batch]
        assert sorted(claimed) == sorted(f"s{n}" for n in range(8))

    async def test_a_job_write_fenced_on_its_delivery_changes_nothing_once_taken_over(
        self, ports: Ports
    ) -> None:
        q = ports.jobs
        (job_id,) = await q.enqueue([a_job("r1")])
        (first,) = await q.dequeue()
        ports.clock.advance(timedelta(minutes=10))
        assert await q.release_stale(ports.clock.now() - timedelta(minutes=5)) == 1
        (second,) = await q.dequeue()
        assert (first.attempt, second.attempt) == (1, 2)
        assert await q.touch(job_id, attempt=1) is False
        await q.release(job_id, attempt=1)  # a stopping worker hands back what it lost
        await q.complete(job_id, attempt=1)
        await q.suspend(job_id, ports.clock.now(), attempt=1)
        assert await q.fail(job_id, "late", retry_at=ports.clock.now(), attempt=1) is False
        (job,) = await q.jobs_of_run("r1")
        assert (job.status, job.attempt, job.last_error) == (Status.RUNNING, 2, None)
        assert await q.touch(job_id, attempt=2) is True
        await q.complete(job_id, attempt=2)
        (job,) = await q.jobs_of_run("r1")
        assert job.status is Status.COMPLETED
        with pytest.raises(RecordNotFoundError):
            await q.complete("nope", attempt=1)

    async def test_a_reaped_job_not_taken_since_is_still_its_delivery_s(self, ports: Ports) -> None:
        q = ports.jobs
        (job_id,) = await q.enqueue([a_job("r1")])
        await q.dequeue()
        ports.clock.advance(timedelta(minutes=10))
        await q.release_stale(ports.clock.now() - timedelta(minutes=5))
        await q.complete(job_id, attempt=1)  # its late outcome won the stage's fence
        (job,) = await q.jobs_of_run("r1")
        assert job.status is Status.COMPLETED
        assert await q.dequeue() == []

    async def test_a_requeued_job_continues_its_stage_s_count_of_deliveries(
        self, ports: Ports
    ) -> None:
        q = ports.jobs
        await q.enqueue([replace(a_job("r1"), attempts_made=3)])
        (job,) = await q.dequeue()
        assert job.attempt == 4

    async def test_a_host_serving_one_run_takes_only_that_run_s_work(self, ports: Ports) -> None:
        p, q = ports.persistence, ports.jobs
        for run_id in ("r1", "r2"):
            await p.create_run(a_run(ports.clock, run_id))
        claim = await p.claim_next_pending_run(run_id="r2")
        assert claim is not None and claim.run.id == "r2"
        assert await p.claim_next_pending_run(run_id="r2") is None
        await q.enqueue([a_job("r1"), a_job("r2")])
        (job,) = await q.dequeue(5, run_id="r2")
        assert job.run_id == "r2"
        assert await q.dequeue(5, run_id="r2") == []
        assert [j.run_id for j in await q.dequeue(5)] == ["r1"]
        now = ports.clock.now()
        for run_id in ("r1", "r2"):
            row = await p.upsert_stage(a_stage(ports.clock, run_id, "s"), {})
            await p.update_stage(row.id, {"status": Status.SUSPENDED, "next_poll_at": now})
        until = now + timedelta(minutes=1)
        (claimed,) = await p.claim_suspended_stages(now, until, 10, run_id="r2")
        assert claimed.run_id == "r2"
        assert [row.run_id for row in await p.claim_suspended_stages(now, until, 10)] == ["r1"]
