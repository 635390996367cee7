"""The queues and limits part of the port conformance suite (`JobTransport.dequeue`).

A dequeue takes only jobs of the queues it names. A concurrency key admits at
most its bound of RUNNING jobs, however many dequeues race for them, and gives
a slot back when a job finishes or its lease is reaped; a rate key admits at
most its bound of leases within any window, shared by every job naming it;
unlimited jobs are leased beside limited ones; a job under limits is never
handed to a worker without a dequeue counting it. Subclass `LimitsConformance`
beside `PortConformance`, with the same `ports` fixture.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from wfc.runtime.handoff import handing_off_to
from wfc.runtime.job_records import JobLimits, JobSpec
from wfc.runtime.records import Status
from wfc.testing.conformance import Ports, a_job
from wfc.testing.taker import SlotTaker

TWO_AT_ONCE = JobLimits(concurrency_key="concurrency:wf:a", concurrency_max=2)
THREE_PER_MINUTE = JobLimits(rate_key="rate:provider", rate_max=3, rate_window_ms=60_000)


def _limited(run_id: str, limits: JobLimits, stage_id: str = "a") -> JobSpec:
    return replace(a_job(run_id, stage_id), limits=limits)


class LimitsConformance:
    async def test_a_dequeue_takes_only_jobs_of_the_queues_it_serves(self, ports: Ports) -> None:
        q = ports.jobs
        await q.enqueue([replace(a_job("r1"), queue="gpu"), a_job("r2"), a_job("r3")])
        assert await q.dequeue(5, queues=["cpu"]) == []
        (gpu,) = await q.dequeue(5, queues=["gpu"])
        assert (gpu.run_id, gpu.queue) == ("r1", "gpu")
        assert {j.run_id for j in await q.dequeue(5, queues=["default", "gpu"])} == {"r2", "r3"}
        assert await q.dequeue(5, queues=[]) == []

    async def test_a_concurrency_key_admits_its_bound_of_running_jobs(self, ports: Ports) -> None:
        q = ports.jobs
        await q.enqueue([_limited(f"r{n}", TWO_AT_ONCE) for n in range(5)] + [a_job("free")])
        (only_free,) = await q.dequeue(10, limited=False)  # a worker serving no limit
        assert only_free.run_id == "free"
        await q.release(only_free.id)
        first = await q.dequeue(10)
        assert sorted(j.run_id for j in first) == ["free", "r0", "r1"]
        leased = [j for j in first if j.run_id != "free"]
        assert all(j.limits == TWO_AT_ONCE for j in leased)
        assert await q.dequeue(10) == []  # full: the other three wait, PENDING
        usage = await q.limit_usage(TWO_AT_ONCE)
        assert (usage.running, usage.started, usage.full) == (2, None, True)
        await q.complete(leased[0].id, attempt=leased[0].attempt)
        (next_one,) = await q.dequeue(10)
        assert next_one.run_id == "r2"
        await q.fail(leased[1].id, "boom", retry_at=None, attempt=leased[1].attempt)
        assert [j.run_id for j in await q.dequeue(10)] == ["r3"]

    async def test_racing_dequeues_never_exceed_a_concurrency_bound(self, ports: Ports) -> None:
        q = ports.jobs
        bound = JobLimits(concurrency_key="concurrency:wf:a", concurrency_max=3)
        await q.enqueue([_limited(f"r{n}", bound) for n in range(12)])
        batches = await asyncio.gather(*(q.dequeue(2) for _ in range(8)))
        assert sum(len(batch) for batch in batches) == 3

    async def test_a_reaped_lease_gives_its_slot_back(self, ports: Ports) -> None:
        q = ports.jobs
        await q.enqueue([_limited(f"r{n}", TWO_AT_ONCE) for n in range(3)])
        assert len(await q.dequeue(10)) == 2
        ports.clock.advance(seconds=60)
        assert await q.release_stale(ports.clock.now() - timedelta(seconds=30)) == 2
        assert len(await q.dequeue(10)) == 2  # two of the three, again

    async def test_keys_are_counted_apart(self, ports: Ports) -> None:
        q = ports.jobs
        other = replace(TWO_AT_ONCE, concurrency_key="concurrency:wf:a:acme")
        await q.enqueue(
            [_limited(f"r{n}", TWO_AT_ONCE) for n in range(3)]
            + [_limited(f"s{n}", other) for n in range(3)]
        )
        leased = await q.dequeue(10)
        assert sorted(j.run_id for j in leased) == ["r0", "r1", "s0", "s1"]

    async def test_a_rate_key_admits_its_bound_per_window(self, ports: Ports) -> None:
        q = ports.jobs
        # Two stages sharing one rate key draw from one budget.
        await q.enqueue(
            [_limited(f"r{n}", THREE_PER_MINUTE, stage_id="a") for n in range(3)]
            + [_limited(f"s{n}", THREE_PER_MINUTE, stage_id="b") for n in range(3)]
        )
        leased = await q.dequeue(10)
        assert len(leased) == 3
        for job in leased:
            await q.complete(job.id, attempt=job.attempt)
        assert await q.dequeue(10) == []  # finished, but started within the window
        ports.clock.advance(seconds=59)
        assert await q.dequeue(10) == []
        assert (await q.limit_usage(THREE_PER_MINUTE)).started == 3
        ports.clock.advance(seconds=2)
        assert not (await q.limit_usage(THREE_PER_MINUTE)).full
        assert len(await q.dequeue(10)) == 3

    async def test_a_job_under_both_limits_needs_room_in_each(self, ports: Ports) -> None:
        q = ports.jobs
        both = JobLimits(
            concurrency_key="concurrency:wf:a",
            concurrency_max=1,
            rate_key="rate:wf:a",
            rate_max=2,
            rate_window_ms=60_000,
        )
        await q.enqueue([_limited(f"r{n}", both) for n in range(4)])
        (first,) = await q.dequeue(10)
        await q.complete(first.id, attempt=first.attempt)
        (second,) = await q.dequeue(10)
        await q.complete(second.id, attempt=second.attempt)
        assert await q.dequeue(10) == []  # concurrency has room, the rate has none

    async def test_a_limited_job_is_never_handed_over_uncounted(self, ports: Ports) -> None:
        q = ports.jobs
        taker = SlotTaker(4)
        with handing_off_to(taker):
            await q.enqueue([_limited("r1", TWO_AT_ONCE), a_job("r2"), a_job("r3")])
        assert sorted(j.run_id for j in taker.taken) == ["r2", "r3"]
        jobs = {j.run_id: j for j in await q.jobs_of_run("r1")}
        assert jobs["r1"].status is Status.PENDING
        with handing_off_to(SlotTaker(4, queues=["gpu"])):
            await q.enqueue([a_job("r4")])  # not a queue that worker serves
        (queued,) = await q.jobs_of_run("r4")
        assert queued.status is Status.PENDING

    async def test_an_operator_bound_replaces_the_plans_for_every_job_of_its_key(
        self, ports: Ports
    ) -> None:
        q = ports.jobs
        await q.enqueue([_limited(f"r{n}", TWO_AT_ONCE) for n in range(6)])
        assert await q.limit_overrides() == {}
        await q.set_limit_override("concurrency:wf:a", 3)
        await q.set_limit_override("rate:unused", 7)
        assert await q.limit_overrides() == {"concurrency:wf:a": 3, "rate:unused": 7}
        assert len(await q.dequeue(10)) == 3
        usage = await q.limit_usage(TWO_AT_ONCE)
        assert (usage.running, usage.concurrency_max, usage.full) == (3, 3, True)
        await q.set_limit_override("concurrency:wf:a", 4)
        assert len(await q.dequeue(10)) == 1
        await q.set_limit_override("concurrency:wf:a", None)  # the plan's 2 again
        await q.set_limit_override("rate:unused", None)
        assert await q.limit_overrides() == {}
        assert await q.dequeue(10) == []
        assert await q.active_limits() == [TWO_AT_ONCE]
