"""Workers take only what they serve: runs and jobs of a plan a worker does not serve wait
for one that does, instead of failing on the first worker that sees them (memory, SQLite,
PostgreSQL: two kernels with different workflows on one storage)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import postgres_database
from wfc.runtime import RunClaimPending, Workflow, WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory import MemoryAICallLogger, MemoryBlobStore
from wfc.runtime.adapters.memory.jobs import MemoryJobTransport
from wfc.runtime.adapters.memory.persistence import MemoryPersistence
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.records import Status
from wfc.testing import FakeClock, SequentialIds, TestKernel, make_test_kernel
from wfc.testing.harness import MemoryStorage


class Order(BaseModel):
    n: int


class Done(BaseModel):
    by: str


def _workflow(workflow_id: str, description: str = "") -> Workflow:
    def step(ctx: Any) -> Done:
        return Done(by=workflow_id + description)

    workflow = (
        WorkflowBuilder(workflow_id, workflow_id, input=Order)
        .pipe(define_stage(id="first", input=Order, output=Done, execute=step))
        .pipe(define_stage(id="second", input=Done, output=Done, execute=step))
        .build()
    )
    if not description:
        return workflow
    plan = workflow.plan.model_copy(update={"description": description}).with_fingerprint()
    return Workflow(plan, workflow.implementations, input_model=workflow.input_model)


@dataclass
class Fleet:
    """A client that creates runs of every workflow, and workers of their own plans."""

    client: TestKernel
    storage: Any
    clock: FakeClock

    def worker(self, *workflows: Workflow, name: str) -> TestKernel:
        return make_test_kernel(*workflows, clock=self.clock, storage=self.storage, ids_prefix=name)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Fleet]:
    clock = FakeClock()
    everything = [_workflow("invoices"), _workflow("emails"), _workflow("invoices", "v2")]
    if request.param == "memory":
        storage: Any = MemoryStorage(
            persistence=MemoryPersistence(clock),
            jobs=MemoryJobTransport(clock, worker_id="w", ids=SequentialIds("job")),
            blobs=MemoryBlobStore(),
            ai_calls=MemoryAICallLogger(),
        )
        yield Fleet(make_test_kernel(*everything[:2], clock=clock, storage=storage), storage, clock)
        return
    if request.param == "sqlite":
        storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=clock)
        await storage.create_schema()
        yield Fleet(make_test_kernel(*everything[:2], clock=clock, storage=storage), storage, clock)
        await storage.close()
        return
    async with postgres_database() as url:
        storage = open_storage(url, clock=clock)
        yield Fleet(make_test_kernel(*everything[:2], clock=clock, storage=storage), storage, clock)
        await storage.close()


async def _status(tk: TestKernel, run_id: str) -> Status:
    run = await tk.persistence.get_run(run_id)
    assert run is not None
    return run.status


async def test_two_services_on_one_database_never_take_each_others_runs(fleet: Fleet) -> None:
    invoice = await fleet.client.create_run("invoices", {"n": 1})
    email = await fleet.client.create_run("emails", {"n": 2})
    emails_worker = fleet.worker(_workflow("emails"), name="e")
    claimed = await emails_worker.kernel.dispatch(RunClaimPending(worker_id="e"))
    assert [c.workflow_run_id for c in claimed.claimed] == [email]
    done = await emails_worker.drive(email)
    assert done.status is Status.COMPLETED and done.output == {"by": "emails"}
    assert await _status(fleet.client, invoice) is Status.PENDING  # waits, not failed
    invoices_worker = fleet.worker(_workflow("invoices"), name="i")
    finished = await invoices_worker.drive(invoice)
    assert finished.status is Status.COMPLETED and finished.output == {"by": "invoices"}


class Priced(BaseModel):
    n: int
    currency: str  # required, no default: no run of the older plan has it


def _with_required_input() -> Workflow:
    def step(ctx: Any) -> Done:
        return Done(by="priced")

    return (
        WorkflowBuilder("invoices", "invoices", input=Priced)
        .pipe(define_stage(id="first", input=Priced, output=Done, execute=step))
        .pipe(define_stage(id="second", input=Done, output=Done, execute=step))
        .build()
    )


async def test_a_breaking_deploy_leaves_the_old_plans_runs_to_the_old_workers(
    fleet: Fleet,
) -> None:
    """A rolling deploy whose change no run of the old plan survives: a run started on v1
    finishes on a v1 worker; the v2 worker takes none of its jobs, and takes the runs
    created with v2."""
    old_run = await fleet.client.create_run("invoices", {"n": 1})
    v1 = fleet.worker(_workflow("invoices"), name="v1")
    await v1.kernel.dispatch(RunClaimPending(worker_id="v1"))  # first group queued, v1's plan
    for job in await v1.jobs.jobs_of_run(old_run):  # not handed to v1: any worker may look
        if job.status is Status.RUNNING:
            await v1.jobs.release(job.id)
    assert [j.status for j in await v1.jobs.jobs_of_run(old_run)] == [Status.PENDING]
    fleet.clock.advance(minutes=5)
    v2 = fleet.worker(_with_required_input(), name="v2")
    assert await v2.work() == 0  # the queued job is of v1's plan
    assert (await v2.tick()).runs_adopted == 0  # v1's runs lack the new required input
    assert await _status(v2, old_run) is Status.RUNNING
    new_client = fleet.worker(_with_required_input(), name="c2")
    new_run = await new_client.create_run("invoices", {"n": 2, "currency": "EUR"})
    assert await v1.work() >= 1  # v1 runs its own stages
    await v1.tick()
    assert await _status(v1, new_run) is Status.PENDING  # not v2's run
    finished_old = await v1.drive(old_run)
    assert finished_old.status is Status.COMPLETED and finished_old.output == {"by": "invoices"}
    finished_new = await v2.drive(new_run)
    assert finished_new.status is Status.COMPLETED and finished_new.output == {"by": "priced"}


class Tagged(BaseModel):
    by: str
    tag: int  # a field the older plan's output never had


def _narrowed() -> Workflow:
    """`invoices` whose first stage's output gained a required field: a run that has run
    that stage holds an output the new plan would refuse."""

    def first(ctx: Any) -> Tagged:
        return Tagged(by="narrowed", tag=1)

    def second(ctx: Any) -> Done:
        return Done(by="narrowed")

    return (
        WorkflowBuilder("invoices", "invoices", input=Order)
        .pipe(define_stage(id="first", input=Order, output=Tagged, execute=first))
        .pipe(define_stage(id="second", input=Done, output=Done, execute=second))
        .build()
    )


async def _halfway(fleet: Fleet) -> str:
    """An `invoices` run of the first plan whose first stage is done and second is queued."""
    run_id = await fleet.client.create_run("invoices", {"n": 1})
    v1 = fleet.worker(_workflow("invoices"), name="v1")
    await v1.kernel.dispatch(RunClaimPending(worker_id="v1"))
    assert await v1.work(max_jobs=1) == 1
    jobs = await v1.jobs.jobs_of_run(run_id)
    for job in jobs:  # whatever v1 handed itself goes back to the queue, unstarted
        if job.status is Status.RUNNING:
            await v1.jobs.release(job.id)
    rows = {row.stage_id: row.status for row in await v1.persistence.stages_of_run(run_id)}
    assert rows["first"] is Status.COMPLETED
    return run_id


async def test_a_compatible_deploy_adopts_the_runs_in_flight(fleet: Fleet) -> None:
    run_id = await _halfway(fleet)
    fleet.clock.advance(minutes=5)  # deployed later: its plan is the newer one
    v2 = fleet.worker(_workflow("invoices", "v2"), name="v2")
    tick = await v2.tick()
    assert tick.runs_adopted == 1, tick
    adopted = await v2.persistence.get_run(run_id)
    assert adopted is not None and adopted.plan_fingerprint == v2.registry.plans()[0]
    assert {job.plan_fingerprint for job in await v2.jobs.jobs_of_run(run_id)} >= {
        adopted.plan_fingerprint
    }
    finished = await v2.drive(run_id)
    assert finished.status is Status.COMPLETED
    assert finished.output == {"by": "invoicesv2"}  # its second stage ran on the new plan


async def test_a_breaking_deploy_leaves_the_run_to_its_own_plan(fleet: Fleet) -> None:
    run_id = await _halfway(fleet)
    fleet.clock.advance(minutes=5)
    narrowed = fleet.worker(_narrowed(), name="v3")
    assert (await narrowed.tick()).runs_adopted == 0
    assert await narrowed.work() == 0
    run = await narrowed.persistence.get_run(run_id)
    assert run is not None and run.plan_fingerprint != narrowed.registry.plans()[0]
    v1 = fleet.worker(_workflow("invoices"), name="v1b")
    finished = await v1.drive(run_id)
    assert finished.status is Status.COMPLETED and finished.output == {"by": "invoices"}


async def test_a_rerun_takes_the_rerunning_plan_where_the_kept_stages_allow(
    fleet: Fleet,
) -> None:
    from wfc.errors import RerunRefusedError
    from wfc.runtime import RunRerunFrom

    v1 = fleet.worker(_workflow("invoices"), name="v1")
    run_id = await v1.create_run("invoices", {"n": 1})
    assert (await v1.drive(run_id)).output == {"by": "invoices"}
    fleet.clock.advance(minutes=5)
    v2 = fleet.worker(_workflow("invoices", "v2"), name="v2")
    await v2.tick()  # announces (and stores) its plan
    await v2.kernel.dispatch(RunRerunFrom(workflow_run_id=run_id, from_stage_id="second"))
    rerun = await v2.drive(run_id)
    assert rerun.status is Status.COMPLETED and rerun.output == {"by": "invoicesv2"}
    assert rerun.plan_fingerprint == v2.registry.plans()[0]

    narrowed = fleet.worker(_narrowed(), name="v3")
    await narrowed.tick()
    with pytest.raises(RerunRefusedError, match=r"break stages it keeps.*rerun it from first"):
        await narrowed.kernel.dispatch(RunRerunFrom(workflow_run_id=run_id, from_stage_id="second"))
    await narrowed.kernel.dispatch(RunRerunFrom(workflow_run_id=run_id, from_stage_id="first"))
    whole = await narrowed.drive(run_id)
    assert whole.status is Status.COMPLETED and whole.output == {"by": "narrowed"}


async def test_migrate_moves_a_run_the_change_leaves_safe(fleet: Fleet) -> None:
    from wfc.runtime.kernel.migrate import migrate_run

    run_id = await _halfway(fleet)
    new = _workflow("invoices", "v2")
    v2 = fleet.worker(new, name="v2")
    await v2.tick()  # stores its plan (it would adopt the run too, on a later plan)
    assert await migrate_run(v2.kernel.deps, run_id, new) == []
    moved = await v2.persistence.get_run(run_id)
    assert moved is not None and moved.plan_fingerprint == new.plan.fingerprint
    finished = await v2.drive(run_id)
    assert finished.status is Status.COMPLETED and finished.output == {"by": "invoicesv2"}


async def test_migrate_refuses_a_breaking_change_unless_it_restarts_before_it(
    fleet: Fleet,
) -> None:
    from wfc.errors import MigrationRefusedError
    from wfc.runtime.kernel.migrate import migrate_run

    run_id = await _halfway(fleet)
    v1_plan = _workflow("invoices").plan.fingerprint
    narrowed = _narrowed()
    v3 = fleet.worker(narrowed, name="v3")
    await v3.tick()
    with pytest.raises(MigrationRefusedError, match=r"breaks stages it has started.*--from"):
        await migrate_run(v3.kernel.deps, run_id, narrowed)
    untouched = await v3.persistence.get_run(run_id)
    assert untouched is not None and untouched.plan_fingerprint == v1_plan
    assert {j.plan_fingerprint for j in await v3.jobs.jobs_of_run(run_id)} == {v1_plan}
    with pytest.raises(MigrationRefusedError, match="breaks stages it would keep"):
        await migrate_run(v3.kernel.deps, run_id, narrowed, "second")  # keeps `first`
    assert await migrate_run(v3.kernel.deps, run_id, narrowed, "first") == ["first", "second"]
    new_plan = narrowed.plan.fingerprint
    old_jobs = [j for j in await v3.jobs.jobs_of_run(run_id) if j.plan_fingerprint != new_plan]
    assert old_jobs and all(j.status in (Status.CANCELLED, Status.COMPLETED) for j in old_jobs)
    finished = await v3.drive(run_id)
    assert finished.status is Status.COMPLETED and finished.output == {"by": "narrowed"}


async def test_migrate_leaves_finished_runs_and_executing_stages_alone(fleet: Fleet) -> None:
    from wfc.errors import MigrationRefusedError
    from wfc.runtime.kernel.migrate import migrate_run

    new = _workflow("invoices", "v2")
    v2 = fleet.worker(new, name="v2")
    await v2.tick()
    run_id = await _halfway(fleet)
    v1 = fleet.worker(_workflow("invoices"), name="v1b")
    (leased,) = await v1.jobs.dequeue(5)  # `second` executing on a v1 worker
    with pytest.raises(MigrationRefusedError, match="executing on its old plan"):
        await migrate_run(v2.kernel.deps, run_id, new)
    await v1.jobs.release(leased.id)
    finished = await v1.drive(run_id)
    assert finished.status is Status.COMPLETED
    with pytest.raises(MigrationRefusedError, match=r"COMPLETED.*wfc runs rerun"):
        await migrate_run(v2.kernel.deps, run_id, new)


async def test_a_plan_is_made_into_json_once_per_workflow_not_per_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test suite builds a kernel per test from the same workflows; each kernel stores
    their plans on its first tick, and making each plan's JSON again for every kernel was
    most of a first run's time. The text stored is still the plan's canonical JSON."""
    workflow = _workflow("once")
    made: list[str] = []
    to_json = type(workflow.plan).to_json

    def counted(plan: Any) -> str:
        made.append(plan.workflow_id)
        return to_json(plan)

    monkeypatch.setattr(type(workflow.plan), "to_json", counted)
    for _ in range(3):
        tk = make_test_kernel(workflow)
        run = await tk.run("once", {"n": 1})
        assert run.status is Status.COMPLETED
        stored = await tk.persistence.get_plan(workflow.plan.fingerprint)
        assert stored is not None and stored.plan == to_json(workflow.plan)
    assert made == ["once"]
