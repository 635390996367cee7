"""The mapped-items and served-plans parts of the port conformance suite.

`ItemsConformance`: the rows of a mapped stage's items, fenced like stage rows
(a start by newer deliveries only, an outcome by the delivery that owns the
item, a poll by the poller whose claim it holds), read in item order, reset
for a rerun, cancelled with their run. `ServedPlansConformance`: a claimer
given the plans it serves takes only runs, jobs and suspended stages of those
plans. Subclass them beside `PortConformance`, with the same `ports` fixture.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from wfc.runtime.records import ItemChanges, ItemRecord, StageFence, StageRecord, Status
from wfc.testing.conformance import Ports, a_job, a_run, a_stage


def an_item(ports: Ports, index: int, *, attempt: int = 1, run_id: str = "r1") -> ItemRecord:
    """Item `index` of stage `m` of `run_id`, RUNNING for delivery `attempt`."""
    now = ports.clock.now()
    return ItemRecord(
        id=f"{run_id}/m/{index}",
        run_id=run_id,
        stage_id="m",
        item_index=index,
        status=Status.RUNNING,
        created_at=now,
        updated_at=now,
        attempt=attempt,
        started_at=now,
    )


async def a_running_map(ports: Ports, run_id: str = "r1") -> StageRecord:
    """The RUNNING row of stage `m` of `run_id`, at pass 0."""
    return await ports.persistence.upsert_stage(
        replace(a_stage(ports.clock, run_id, "m"), status=Status.RUNNING), {}
    )


class ItemsConformance:
    """Items of mapped stages (`Persistence.start_item` and the rest)."""

    async def test_an_item_is_started_by_newer_deliveries_only_and_never_once_finished(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        first = await p.start_item(an_item(ports, 0), {}, StageFence.startable(1))
        assert first is not None and (first.status, first.attempt) == (Status.RUNNING, 1)
        again = an_item(ports, 0, attempt=1)
        assert await p.start_item(again, {"attempt": 1}, StageFence.startable(1)) is None
        newer = await p.start_item(
            an_item(ports, 0, attempt=2), {"attempt": 2}, StageFence.startable(2)
        )
        assert newer is not None and newer.attempt == 2 and newer.id == first.id
        done: ItemChanges = {"status": Status.COMPLETED, "output": {"n": 1}}
        assert await p.update_item(first.id, done, fence=StageFence.running(2)) is not None
        late = an_item(ports, 0, attempt=3)
        assert await p.start_item(late, {"attempt": 3}, StageFence.startable(3)) is None

    async def test_a_new_pass_takes_over_an_earlier_pass_s_item_and_never_the_reverse(
        self, ports: Ports
    ) -> None:
        """A delivery of pass 0 that started its item after a rerun (it lost the race with
        the rerun: its outcome is refused by the stage's fence) leaves a RUNNING row at
        attempt 1; the new pass's delivery, also attempt 1, must still start it, and a
        late delivery of pass 0 must not take a row of pass 1."""
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        stage = await a_running_map(ports)
        stray = await p.start_item(an_item(ports, 0), {}, StageFence.item_startable(1, 0))
        assert stray is not None and stray.generation == 0
        await p.update_stage(stage.id, {"generation": 1})  # the rerun's pass
        mine: ItemChanges = {"status": Status.RUNNING, "attempt": 1, "generation": 1}
        new_pass = replace(an_item(ports, 0), generation=1)
        taken = await p.start_item(new_pass, mine, StageFence.item_startable(1, 1))
        assert taken is not None and (taken.generation, taken.attempt) == (1, 1)
        assert await p.start_item(new_pass, mine, StageFence.item_startable(1, 1)) is None
        late: ItemChanges = {"status": Status.RUNNING, "attempt": 2, "generation": 0}
        assert await p.start_item(an_item(ports, 0), late, StageFence.item_startable(2, 0)) is None
        [stored] = await p.items_of_stage("r1", "m")
        assert (stored.generation, stored.attempt, stored.version) == (1, 1, taken.version)

    async def test_an_item_starts_only_while_its_stage_runs_the_item_s_pass(
        self, ports: Ports
    ) -> None:
        """A delivery that read its run before a rerun or a cancel (a warm start reads
        nothing) must not write a RUNNING row into a stage that moved on or ended."""
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        assert await p.start_item(an_item(ports, 0), {}, StageFence.item_startable(1, 0)) is None
        stage = await a_running_map(ports)
        started = await p.start_item(an_item(ports, 0), {}, StageFence.item_startable(1, 0))
        assert started is not None
        await p.update_stage(stage.id, {"generation": 1})
        again: ItemChanges = {"attempt": 2}
        assert await p.start_item(an_item(ports, 0), again, StageFence.item_startable(2, 0)) is None
        assert await p.start_item(an_item(ports, 1), {}, StageFence.item_startable(1, 0)) is None
        await p.update_stage(stage.id, {"generation": 0, "status": Status.CANCELLED})
        assert await p.start_item(an_item(ports, 0), again, StageFence.item_startable(2, 0)) is None
        assert await p.start_item(an_item(ports, 1), {}, StageFence.item_startable(1, 0)) is None
        [stored] = await p.items_of_stage("r1", "m")
        assert (stored.item_index, stored.attempt, stored.version) == (0, 1, started.version)

    async def test_an_item_start_racing_a_cancel_leaves_no_running_item(self, ports: Ports) -> None:
        """A start sent while a cancel's transaction has ended the stage and its items,
        but not committed: it must not see the stage RUNNING as it was before the cancel
        and insert its item after the cancel ended the others (on PostgreSQL the start
        waits for the stage's row, which the cancel holds)."""
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        stage = await a_running_map(ports)
        async with p.transaction() as tx:
            await tx.update_stage(stage.id, {"status": Status.CANCELLED})
            await tx.cancel_items("r1")
            start = p.start_item(an_item(ports, 0), {}, StageFence.item_startable(1, 0))
            late = asyncio.ensure_future(start)
            # Time for a start that does not wait for the cancel to write its row (a test
            # that passes the faulty store when the machine is slower, never fails a
            # sound one): the sound ones wait for the commit or see the cancel.
            await asyncio.wait([late], timeout=0.2)
        assert await late is None
        assert await p.items_of_stage("r1", "m") == []

    async def test_an_outcome_lands_only_for_the_delivery_that_owns_the_item(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        item = await p.start_item(an_item(ports, 3, attempt=2), {}, StageFence.startable(2))
        assert item is not None
        ghost: ItemChanges = {"status": Status.COMPLETED, "output": {"n": "ghost"}}
        assert await p.update_item(item.id, ghost, fence=StageFence.running(1)) is None
        owner: ItemChanges = {
            "status": Status.COMPLETED,
            "output": {"n": 3},
            "metrics": {"total_cost": 0.5},
        }
        written = await p.update_item(item.id, owner, fence=StageFence.running(2))
        assert written is not None and written.version == item.version + 1
        [stored] = await p.items_of_stage("r1", "m")
        assert (stored.status, stored.output, stored.metrics) == (
            Status.COMPLETED,
            {"n": 3},
            {"total_cost": 0.5},
        )

    async def test_items_are_read_in_item_order_and_by_status(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        for index in (4, 0, 2):
            await p.start_item(an_item(ports, index), {}, StageFence.startable(1))
        failed = await p.items_of_stage("r1", "m")
        await p.update_item(failed[1].id, {"status": Status.FAILED}, fence=StageFence.running(1))
        assert [i.item_index for i in await p.items_of_stage("r1", "m")] == [0, 2, 4]
        only = await p.items_of_stage("r1", "m", statuses=[Status.FAILED])
        assert [i.item_index for i in only] == [2]
        assert await p.items_of_stage("r1", "other") == []

    async def test_a_rerun_resets_the_chosen_items_and_a_cancel_ends_the_open_ones(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        for index in range(3):
            await p.start_item(an_item(ports, index, attempt=2), {}, StageFence.startable(2))
        rows = await p.items_of_stage("r1", "m")
        await p.update_item(rows[0].id, {"status": Status.FAILED}, fence=StageFence.running(2))
        await p.update_item(rows[1].id, {"status": Status.COMPLETED}, fence=StageFence.running(2))
        assert await p.reset_items("r1", "m", [Status.FAILED], generation=1) == 1
        reset = (await p.items_of_stage("r1", "m"))[0]
        assert (reset.status, reset.attempt, reset.generation) == (Status.PENDING, 0, 1)
        # A delivery of the rerun starts it; the old delivery's outcome no longer lands.
        assert await p.update_item(reset.id, {"status": Status.COMPLETED}, fence=StageFence.running(2)) is None  # fmt: skip
        other = replace(an_item(ports, 0), id="r1/n/0", stage_id="n")
        await p.start_item(other, {}, StageFence.startable(1))
        assert await p.cancel_items("r1", "n") == 1  # that stage's only (it failed)
        assert [i.status for i in await p.items_of_stage("r1", "n")] == [Status.CANCELLED]
        statuses = [i.status for i in await p.items_of_stage("r1", "m")]
        assert statuses == [Status.PENDING, Status.COMPLETED, Status.RUNNING]
        assert await p.cancel_items("r1") == 2  # the reset one and the RUNNING one
        statuses = [i.status for i in await p.items_of_stage("r1", "m")]
        assert statuses == [Status.CANCELLED, Status.COMPLETED, Status.CANCELLED]
        await p.delete_items("r1", ["m"])
        assert await p.items_of_stage("r1", "m") == []

    async def test_a_due_suspended_item_is_claimed_by_one_poller(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        now = ports.clock.now()
        for index in range(4):
            item = await p.start_item(an_item(ports, index), {}, StageFence.startable(1))
            assert item is not None
            due: ItemChanges = {
                "status": Status.SUSPENDED,
                "next_poll_at": now,
                "suspended_state": {"i": 1},
            }
            await p.update_item(item.id, due, fence=StageFence.running(1))
        until = now + timedelta(minutes=5)
        claims = await asyncio.gather(
            p.claim_suspended_items(now, until, 3), p.claim_suspended_items(now, until, 3)
        )
        claimed = [item.item_index for batch in claims for item in batch]
        assert sorted(claimed) == [0, 1, 2, 3]  # each once, across both pollers
        assert await p.claim_suspended_items(now, until, 10) == []
        [first] = [item for batch in claims for item in batch if item.item_index == 0]
        ready: ItemChanges = {"status": Status.COMPLETED}
        assert await p.update_item(first.id, ready, fence=StageFence.polled(first.version - 1)) is None  # fmt: skip
        assert await p.update_item(first.id, ready, fence=StageFence.polled(first.version))


class ServedPlansConformance:
    """A claimer given `plans` takes only what was created with one of them."""

    async def test_claims_dequeues_and_polls_take_only_the_plans_served(self, ports: Ports) -> None:
        p, q = ports.persistence, ports.jobs
        await p.create_run(replace(a_run(ports.clock, "old"), plan_fingerprint="sha256:old"))
        await p.create_run(replace(a_run(ports.clock, "new"), plan_fingerprint="sha256:new"))
        assert await p.claim_next_pending_run(plans=[]) is None
        claim = await p.claim_next_pending_run(plans=["sha256:new"])
        assert claim is not None and claim.run.id == "new" and not claim.others_pending
        assert await p.claim_next_pending_run(plans=["sha256:new"]) is None
        await q.enqueue(
            [
                replace(a_job("old"), plan_fingerprint="sha256:old"),
                replace(a_job("new"), plan_fingerprint="sha256:new"),
            ]
        )
        assert await q.dequeue(5, plans=[]) == []
        [job] = await q.dequeue(5, plans=["sha256:new", "sha256:other"])
        assert (job.run_id, job.plan_fingerprint) == ("new", "sha256:new")
        assert [j.run_id for j in await q.dequeue(5)] == ["old"]  # no plans given: any
        now = ports.clock.now()
        for run_id in ("old", "new"):
            row = replace(a_stage(ports.clock, run_id, "a"), status=Status.SUSPENDED)
            await p.upsert_stage(replace(row, next_poll_at=now), {})
        until = now + timedelta(minutes=1)
        polled = await p.claim_suspended_stages(now, until, 10, plans=["sha256:old"])
        assert [row.run_id for row in polled] == ["old"]
        assert await p.claim_suspended_stages(now, until, 10, plans=[]) == []
