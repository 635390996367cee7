"""A run created beside a host that offered its slots (`Kernel.offer_slots`) is claimed in
its create's transaction, as a claim right after the create would: the best PENDING run,
its first stage handed to the host, the same rows and events; or created PENDING when the
host has no room, serves another run or loop, or the claim fails (memory, SQLite,
PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.databases import kernel_on_storage
from tests.kernel.conftest import Doc, Script, Words, build_workflows
from tests.kernel.helpers import DOC, event_types, run_of
from wfc.plan import ConcurrencyLimit
from wfc.runtime import RunClaimPending, RunCreate, Status, WorkflowBuilder, define_stage
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel import claim
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel

STARTED = ["workflow:created", "workflow:started", "stage:started"]


@dataclass
class Host:
    """A `RunTaker` that records what it is handed and told."""

    slots: int = 1
    run_id: str | None = None
    worker_id: str = "here"
    taken: list[JobRecord] = field(default_factory=list)
    told: list[tuple[str, bool, bool]] = field(default_factory=list)

    @property
    def jobs_taken(self) -> int:
        return len(self.taken)

    def free_slots(self) -> int:
        return self.slots - len(self.taken)

    def room_for_a_run(self) -> bool:
        return self.free_slots() > 0

    def serves(self, queue: str) -> bool:
        return True

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        self.taken.extend(jobs)

    def claimed_at_create(self, run_id: str, *, jobs_waiting: bool, others_pending: bool) -> None:
        self.told.append((run_id, jobs_waiting, others_pending))


def limited() -> Workflow:
    """One stage under a fleet limit: its job is leased only by a dequeue."""
    stage = define_stage(id="only", input=Doc, output=Words, execute=lambda ctx: Words(words=["x"]))
    stage = replace(
        stage, plan=stage.plan.model_copy(update={"concurrency": ConcurrencyLimit(max=1)})
    )
    return WorkflowBuilder("limited", "Limited", input=Doc).pipe(stage).build()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    workflows = [*build_workflows(Script()), limited()]
    async with kernel_on_storage(request.param, workflows, tmp_path) as kernel:
        yield kernel


async def _create(tk: TestKernel, key: str, **fields: Any) -> str:
    command = RunCreate(idempotency_key=key, workflow_id="linear", input=DOC, **fields)
    return (await tk.kernel.dispatch(command)).workflow_run_id


async def _shape(tk: TestKernel, run_id: str) -> dict[str, Any]:
    """What a run's create and claim left, without its ids."""
    run = await run_of(tk, run_id)
    stages = await tk.persistence.stages_of_run(run_id)
    jobs = await tk.jobs.jobs_of_run(run_id)
    events = await tk.persistence.outbox_of_run(run_id)
    return {
        "run": (run.status, run.version, run.started_at, run.updated_at),
        "stages": sorted((s.stage_id, s.status, s.attempt, s.version) for s in stages),
        "jobs": [(j.stage_id, j.status, j.attempt, j.worker_id, j.locked_at) for j in jobs],
        "events": [
            (e.event_type, e.sequence, json.dumps(e.payload).replace(run_id, "RUN")) for e in events
        ],
    }


async def test_a_run_created_beside_a_host_with_room_is_left_as_create_then_claim_leave_it(
    tk: TestKernel,
) -> None:
    apart, together = Host(), Host()
    first = await _create(tk, "apart")
    with handing_off_to(apart):
        await tk.kernel.dispatch(RunClaimPending(worker_id="here", max_claims=1))
    tk.kernel.offer_slots(together)
    second = await _create(tk, "together")
    assert (await run_of(tk, second)).status is Status.RUNNING
    assert await event_types(tk, second) == STARTED
    assert await _shape(tk, second) == await _shape(tk, first)
    assert [job.run_id for job in together.taken] == [second]
    assert together.taken[0].status is Status.RUNNING and together.taken[0].attempt == 1
    assert together.told == [(second, False, False)]


async def test_a_repeated_create_returns_the_first_run_and_claims_nothing(tk: TestKernel) -> None:
    host = Host(slots=2)
    tk.kernel.offer_slots(host)
    first = await _create(tk, "same")
    assert await _create(tk, "same") == first
    assert [job.run_id for job in host.taken] == [first]
    assert host.told == [(first, False, False)]
    assert await event_types(tk, first) == STARTED


async def test_the_create_claims_the_best_pending_run_which_may_be_an_older_one(
    tk: TestKernel,
) -> None:
    waiting = await _create(tk, "older", priority=9)  # no host yet: PENDING
    host = Host()
    tk.kernel.offer_slots(host)
    new = await _create(tk, "newer")
    assert (await run_of(tk, waiting)).status is Status.RUNNING
    assert (await run_of(tk, new)).status is Status.PENDING
    assert await event_types(tk, new) == ["workflow:created"]
    assert [job.run_id for job in host.taken] == [waiting]
    assert host.told == [(waiting, False, True)]  # the new run is still PENDING


async def test_a_host_without_room_or_serving_another_run_gets_nothing(tk: TestKernel) -> None:
    full, elsewhere = Host(slots=0), Host(run_id="another")
    tk.kernel.offer_slots(full)
    tk.kernel.offer_slots(elsewhere)
    created = await _create(tk, "pending")
    assert (await run_of(tk, created)).status is Status.PENDING
    assert full.taken == elsewhere.taken == [] and full.told == elsewhere.told == []
    mine = Host(run_id="mine")
    tk.kernel.offer_slots(mine)
    assert (await _create(tk, "mine", run_id="mine")) == "mine"
    # Its run only: not the other one left PENDING, older though it is.
    assert [job.run_id for job in mine.taken] == ["mine"]
    assert (await run_of(tk, created)).status is Status.PENDING


async def test_a_withdrawn_host_gets_nothing(tk: TestKernel) -> None:
    host = Host()
    tk.kernel.offer_slots(host)
    tk.kernel.withdraw_slots(host)
    created = await _create(tk, "withdrawn")
    assert (await run_of(tk, created)).status is Status.PENDING and host.taken == []


async def test_a_limited_first_stage_is_queued_for_a_dequeue_that_counts_its_limit(
    tk: TestKernel,
) -> None:
    host = Host()
    tk.kernel.offer_slots(host)
    created = await tk.kernel.dispatch(
        RunCreate(idempotency_key="limited", workflow_id="limited", input=DOC)
    )
    run_id = created.workflow_run_id
    assert (await run_of(tk, run_id)).status is Status.RUNNING
    assert host.taken == []
    assert [job.status for job in await tk.jobs.jobs_of_run(run_id)] == [Status.PENDING]
    assert host.told == [(run_id, True, False)]  # the host looks for the queued job


async def test_a_claim_that_fails_in_the_create_leaves_the_run_created_pending(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> None:
        raise RuntimeError("the first group cannot open")

    monkeypatch.setattr(claim, "_start", broken)
    host = Host()
    tk.kernel.offer_slots(host)
    created = await _create(tk, "broken")
    assert (await run_of(tk, created)).status is Status.PENDING
    assert await event_types(tk, created) == ["workflow:created"]
    assert await tk.jobs.jobs_of_run(created) == []
    assert host.taken == [] and host.told == []


async def test_a_host_offered_on_another_event_loop_gets_nothing(tk: TestKernel) -> None:
    host = Host()

    async def offer() -> None:
        tk.kernel.offer_slots(host)

    await asyncio.to_thread(asyncio.run, offer())
    created = await _create(tk, "other-loop")
    assert (await run_of(tk, created)).status is Status.PENDING and host.taken == []
