"""The port conformance suite's job queue: part of `PortConformance`
(`wfc.testing.conformance`), which runs it with the rest."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from wfc.errors import RecordNotFoundError
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.records import Status
from wfc.testing.port_fixtures import (
    Ports,
    SlotTaker,
    a_job,
)


class JobConformance:
    """Dequeue order, leases, retries, hand-offs and races of the job queue."""

    # -- jobs --------------------------------------------------------------

    async def test_dequeue_order_due_time_and_attempts(self, ports: Ports) -> None:
        q, clock = ports.jobs, ports.clock
        later = clock.now() + timedelta(minutes=1)
        low, high, scheduled = await q.enqueue(
            [
                a_job("r", "low", priority=1),
                a_job("r", "high", priority=9),
                a_job("r", "later", run_at=later),
            ]
        )
        leased = await q.dequeue(5)
        assert [j.id for j in leased] == [high, low]
        first = leased[0]
        assert (first.status, first.attempt, first.locked_at) == (Status.RUNNING, 1, clock.now())
        assert first.payload == {"config": {}} and first.max_attempts == 2
        assert await q.dequeue() == []
        clock.advance(minutes=1)
        assert [j.id for j in await q.dequeue()] == [scheduled]

    async def test_fail_retries_while_attempts_remain(self, ports: Ports) -> None:
        q, clock = ports.jobs, ports.clock
        (job_id,) = await q.enqueue([a_job("r")])
        await q.dequeue()
        retry_at = clock.now() + timedelta(seconds=2)
        assert await q.fail(job_id, "first", retry_at=retry_at)
        assert await q.dequeue() == []
        clock.advance(seconds=2)
        (again,) = await q.dequeue()
        assert again.attempt == 2 and again.last_error == "first"
        assert not await q.fail(job_id, "second", retry_at=clock.now())
        (final,) = await q.jobs_of_run("r")
        assert (final.status, final.last_error) == (Status.FAILED, "second")
        with pytest.raises(RecordNotFoundError):
            await q.complete("nope")

    async def test_complete_suspend_and_cancel(self, ports: Ports) -> None:
        q, clock = ports.jobs, ports.clock
        done, parked, queued = await q.enqueue([a_job("r", "a"), a_job("r", "b"), a_job("r", "c")])
        await q.dequeue(2)
        await q.complete(done)
        await q.suspend(parked, clock.now() + timedelta(minutes=1))
        assert await q.cancel_by_run("r") == 2
        statuses = {j.stage_id: j.status for j in await q.jobs_of_run("r")}
        assert statuses == {"a": Status.COMPLETED, "b": Status.CANCELLED, "c": Status.CANCELLED}
        assert queued and await q.dequeue() == []

    async def test_a_job_is_completed_by_the_enqueue_it_hands_on_to(self, ports: Ports) -> None:
        q, clock = ports.jobs, ports.clock
        (first,) = await q.enqueue([a_job("r", "a")])
        await q.dequeue()
        (second,) = await q.enqueue([a_job("r", "b")], completing=first)
        taker = SlotTaker(free=2)
        with handing_off_to(taker):
            (leased,) = await q.dequeue()
            assert leased.id == second
            third, fourth = await q.enqueue([a_job("r", "c1"), a_job("r", "c2")], completing=second)
        assert [j.id for j in taker.taken[0]] == [third, fourth]
        await q.enqueue([], completing=third)  # the last group: nothing queued
        await q.enqueue([a_job("r2")], completing="nope")  # no such job: queued all the same
        statuses = {j.id: j.status for j in await q.jobs_of_run("r")}
        assert statuses == {
            first: Status.COMPLETED,
            second: Status.COMPLETED,
            third: Status.COMPLETED,
            fourth: Status.RUNNING,
        }
        done = {j.id: j.completed_at for j in await q.jobs_of_run("r")}
        assert done[first] == done[second] == clock.now()
        assert len(await q.jobs_of_run("r2")) == 1

    async def test_a_dequeue_completes_a_released_job_and_leases_another(
        self, ports: Ports
    ) -> None:
        """The finishing holder's job was reaped back to PENDING at its attempt (nobody took
        it yet): the dequeue that completes it must not also lease it again."""
        q, clock = ports.jobs, ports.clock
        (finishing,) = await q.enqueue([a_job("r", "b1")])
        await q.dequeue()
        clock.advance(minutes=6)
        assert await q.release_stale(clock.now() - timedelta(minutes=5)) == 1
        (sibling,) = await q.enqueue([a_job("r", "b2")])
        (leased,) = await q.dequeue(completing=(finishing, 1))
        assert leased.id == sibling
        statuses = {j.id: (j.status, j.attempt) for j in await q.jobs_of_run("r")}
        assert statuses == {finishing: (Status.COMPLETED, 1), sibling: (Status.RUNNING, 1)}

    async def test_stale_leases_are_released_unless_touched(self, ports: Ports) -> None:
        q, clock = ports.jobs, ports.clock
        live, dead = await q.enqueue([a_job("r", "live"), a_job("r", "dead")])
        await q.dequeue(2)
        clock.advance(minutes=4)
        await q.touch(live)
        clock.advance(minutes=2)
        assert await q.release_stale(clock.now() - timedelta(minutes=5)) == 1
        statuses = {j.id: (j.status, j.worker_id, j.attempt) for j in await q.jobs_of_run("r")}
        assert statuses[dead] == (Status.PENDING, None, 1)
        assert statuses[live][0] is Status.RUNNING
        await q.release(live)
        assert {j.status for j in await q.jobs_of_run("r")} == {Status.PENDING}
        await q.touch("nope")  # no-op

    async def test_jobs_queued_under_a_handoff_go_leased_to_the_taker(self, ports: Ports) -> None:
        q, clock = ports.jobs, ports.clock
        taker = SlotTaker(free=1)
        later = clock.now() + timedelta(minutes=1)
        with handing_off_to(taker):
            scheduled, handed, queued = await q.enqueue(
                [a_job("r", "later", run_at=later), a_job("r", "a"), a_job("r", "b")]
            )
        ((taken,),) = taker.taken
        assert taken.id == handed and taker.more_queued == [True]
        assert (taken.status, taken.attempt, taken.locked_at) == (Status.RUNNING, 1, clock.now())
        assert taken.worker_id is not None and taken.payload == {"config": {}}
        assert [j.id for j in await q.dequeue(5)] == [queued]  # the handed job is not offered
        statuses = {j.id: j.status for j in await q.jobs_of_run("r")}
        assert statuses == {
            scheduled: Status.PENDING,
            handed: Status.RUNNING,
            queued: Status.RUNNING,
        }
        full = SlotTaker(free=0)
        with handing_off_to(full):
            (pending,) = await q.enqueue([a_job("r2")])
        assert full.taken == [[]] and full.more_queued == [True]
        assert [j.id for j in await q.dequeue()] == [pending]

    async def test_concurrent_dequeuers_never_share_a_job(self, ports: Ports) -> None:
        q = ports.jobs
        ids = await q.enqueue([a_job("r", f"s{i}") for i in range(20)])
        batches = await asyncio.gather(*(q.dequeue(3) for _ in range(10)))
        leased = [j.id for batch in batches for j in batch]
        assert sorted(leased) == sorted(ids)
