"""The outcome that ends a run claims the next PENDING run for the slot it frees, in its
own transaction (`completion._claim_next`), when its host has room for one
(`handoff.NextRunTaker`): the run is left as a separate `run.claimPending` would leave it,
priority and fleet limits count as in any claim, nothing is claimed for a host without room,
and an outcome whose claim fails still commits (memory, SQLite). On PostgreSQL the
outcome's predicted one-statement transaction cannot read, and claims nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.databases import kernel_on_storage
from tests.kernel.conftest import Script, build_workflows
from tests.kernel.helpers import DOC, event_types, run_of
from tests.kernel.test_claim_at_create import Host, _shape, limited
from wfc.runtime import RunClaimPending, RunCreate, Status
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import process_job
from wfc.runtime.kernel import claim
from wfc.testing import TestKernel

ENDED = ["stage:completed", "workflow:completed"]


@dataclass
class Slot(Host):
    """A one-slot `NextRunTaker`: it runs what it is handed, and says whether its slot may
    claim the next run as an outcome ends its run (`room`)."""

    room: bool = True
    ran: int = 0
    at_outcome: list[tuple[str | None, bool, bool]] = field(default_factory=list)

    def free_slots(self) -> int:
        return self.slots - (len(self.taken) - self.ran)

    def room_for_next_run(self) -> bool:
        return self.room

    def claimed_at_outcome(
        self, run_id: str | None, *, jobs_waiting: bool, others_pending: bool
    ) -> None:
        self.at_outcome.append((run_id, jobs_waiting, others_pending))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    workflows = [*build_workflows(Script()), limited()]
    async with kernel_on_storage(request.param, workflows, tmp_path) as kernel:
        yield kernel


@pytest.fixture(params=["memory", "sqlite"])
async def reading(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    """The stores whose predicted outcome transaction may still read, and so claims."""
    workflows = [*build_workflows(Script()), limited()]
    async with kernel_on_storage(request.param, workflows, tmp_path) as kernel:
        yield kernel


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[TestKernel]:
    workflows = [*build_workflows(Script()), limited()]
    async with kernel_on_storage("postgres", workflows, tmp_path) as kernel:
        yield kernel


async def _create(tk: TestKernel, key: str, workflow_id: str = "linear", **fields: Any) -> str:
    command = RunCreate(idempotency_key=key, workflow_id=workflow_id, input=DOC, **fields)
    return (await tk.kernel.dispatch(command)).workflow_run_id


async def _serve(tk: TestKernel, slot: Slot, run_id: str) -> None:
    """Run the jobs handed to `slot` until `run_id` has ended, as a worker's slot would."""
    while (await run_of(tk, run_id)).status is Status.RUNNING:
        job = slot.taken[slot.ran]
        slot.ran += 1
        with handing_off_to(slot):
            await process_job(tk.kernel, job)


async def _claim_first(tk: TestKernel, slot: Slot) -> str:
    with handing_off_to(slot):
        result = await tk.kernel.dispatch(RunClaimPending(worker_id="here", max_claims=1))
    return result.claimed[0].workflow_run_id


async def test_the_run_claimed_at_an_outcome_is_left_as_a_claim_of_its_own_leaves_it(
    reading: TestKernel,
) -> None:
    tk = reading
    first, second, third = [await _create(tk, key) for key in ("first", "second", "third")]
    slot = Slot()
    assert await _claim_first(tk, slot) == first
    await _serve(tk, slot, first)
    assert (await run_of(tk, first)).status is Status.COMPLETED
    assert (await event_types(tk, first))[-2:] == ENDED
    # Claimed in the last outcome's transaction, its first stage handed to the freed slot.
    assert (await run_of(tk, second)).status is Status.RUNNING
    assert [job.run_id for job in slot.taken[slot.ran :]] == [second]
    assert slot.at_outcome == [(second, False, True)]  # the third still waits
    apart = Slot(room=False)
    assert await _claim_first(tk, apart) == third
    assert await _shape(tk, second) == await _shape(tk, third)
    await _serve(tk, slot, second)  # the last one: the next outcome claims nothing
    assert slot.at_outcome[1:] == [(None, False, False)]
    assert (await run_of(tk, second)).status is Status.COMPLETED


async def test_the_outcome_claims_by_priority_and_counts_fleet_limits(
    reading: TestKernel,
) -> None:
    tk = reading
    first = await _create(tk, "first")
    slot = Slot()
    assert await _claim_first(tk, slot) == first
    older = await _create(tk, "older")
    limited_run = await _create(tk, "limited", workflow_id="limited", priority=9)
    await _serve(tk, slot, first)
    assert (await run_of(tk, limited_run)).status is Status.RUNNING
    assert (await run_of(tk, older)).status is Status.PENDING
    # Its limited first job is queued for a dequeue that counts the limit, not handed here.
    assert slot.taken[slot.ran :] == []
    assert [job.status for job in await tk.jobs.jobs_of_run(limited_run)] == [Status.PENDING]
    assert slot.at_outcome == [(limited_run, True, True)]


async def test_a_slot_without_room_for_a_run_claims_nothing_at_its_outcome(
    tk: TestKernel,
) -> None:
    # A stopping worker, or one that left no runs PENDING for want of room.
    await _serve_one_and_claim_nothing(tk, Slot(room=False))


async def test_an_outcome_whose_claim_fails_still_commits_and_leaves_the_run_pending(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await _create(tk, "first")
    slot = Slot()
    assert await _claim_first(tk, slot) == first
    waiting = await _create(tk, "waiting")

    async def broken(*args: Any) -> None:
        raise RuntimeError("the first group cannot open")

    monkeypatch.setattr(claim, "_start", broken)
    await _serve(tk, slot, first)
    assert (await run_of(tk, first)).status is Status.COMPLETED
    assert (await event_types(tk, first))[-2:] == ENDED
    assert all(job.status is Status.COMPLETED for job in await tk.jobs.jobs_of_run(first))
    assert (await run_of(tk, waiting)).status is Status.PENDING
    assert await event_types(tk, waiting) == ["workflow:created"]
    assert slot.at_outcome == [] and slot.taken[slot.ran :] == []


async def test_on_postgresql_the_last_outcome_stays_one_statement_and_claims_nothing(
    postgres: TestKernel,
) -> None:
    """Its transaction says it does not claim (`claims_at_outcome`): a claim's read would
    make the predicted one statement a reading transaction, more round trips than the
    claim it saves. The slot claims as it frees up instead."""
    await _serve_one_and_claim_nothing(postgres, Slot())


async def _serve_one_and_claim_nothing(tk: TestKernel, slot: Slot) -> None:
    """A run served to its end by `slot` while another waits: the outcome claims nothing."""
    first = await _create(tk, "first")
    assert await _claim_first(tk, slot) == first
    waiting = await _create(tk, "waiting")
    await _serve(tk, slot, first)
    assert (await run_of(tk, first)).status is Status.COMPLETED
    assert (await run_of(tk, waiting)).status is Status.PENDING
    assert slot.at_outcome == [] and slot.taken[slot.ran :] == []
