"""`run.claimPending`: order, first group, per-run isolation, concurrent claimers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from tests.kernel.helpers import DOC, event_types, run_of, stage_of
from wfc.runtime import RunClaimPending, Status, Workflow
from wfc.runtime.kernel import opening
from wfc.runtime.kernel.rows import new_stage_row
from wfc.runtime.records import RunRecord
from wfc.testing import TestKernel


async def test_claims_by_priority_then_age_and_queues_the_first_group(tk: TestKernel) -> None:
    low = await tk.create_run("linear", DOC, priority=1)
    high = await tk.create_run("fanout", DOC, priority=9)
    tk.clock.advance(seconds=1)
    later_high = await tk.create_run("linear", DOC, priority=9)
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w1", max_claims=2))
    assert [c.workflow_run_id for c in result.claimed] == [high, later_high]
    assert (await run_of(tk, low)).status is Status.PENDING
    run = await run_of(tk, high)
    assert run.status is Status.RUNNING and run.started_at == tk.clock.now()
    split = await stage_of(tk, high, "split")
    assert (split.status, split.execution_group, split.stage_number) == (Status.PENDING, 1, 1)
    assert split.config == {"lowercase": False, "limit": 100}
    jobs = await tk.all_jobs()
    assert [j.id for j in jobs] == [*result.claimed[0].job_ids, *result.claimed[1].job_ids]
    assert jobs[0].payload == {"config": run.config} and jobs[0].max_attempts == 3
    assert await event_types(tk, high) == ["workflow:created", "workflow:started"]


async def test_nothing_pending_claims_nothing(tk: TestKernel) -> None:
    assert (await tk.kernel.dispatch(RunClaimPending(worker_id="w"))).claimed == []


async def test_claiming_stops_once_a_claim_saw_nothing_else_pending(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No empty claim after the last run: each costs a transaction, and every worker makes
    one for each run created when they all wake for it."""
    created = [await tk.create_run("linear", DOC) for _ in range(2)]
    attempts = 0
    # Defined once for the store and its transaction handles alike.
    owner = next(c for c in type(tk.persistence).__mro__ if "claim_next_pending_run" in vars(c))
    real = vars(owner)["claim_next_pending_run"]

    async def counted(self: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return await real(self, **kwargs)

    monkeypatch.setattr(owner, "claim_next_pending_run", counted)
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    assert [c.workflow_run_id for c in result.claimed] == created
    assert attempts == 2


async def test_a_run_of_an_unknown_workflow_fails_and_the_next_is_still_claimed(
    tk: TestKernel,
) -> None:
    lost = await tk.create_run("linear", DOC)
    workflow = tk.registry._workflows.pop("linear")
    tk.registry._workflows["fanout2"] = workflow  # keep something registered
    good = await tk.create_run("fanout", DOC)
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w9"))
    assert [c.workflow_run_id for c in result.claimed] == [good]
    failed = await run_of(tk, lost)
    assert failed.status is Status.FAILED
    assert failed.error == {
        "code": "WORKFLOW_NOT_FOUND",
        "message": "Workflow linear not found in registry",
        "worker_id": "w9",
    }
    assert await event_types(tk, lost) == ["workflow:created", "workflow:failed"]
    assert [log.message for log in (await tk.all_logs())] == [
        "Workflow linear not found in registry"
    ]


async def test_a_run_created_with_another_plan_version_waits_for_a_worker_that_serves_it(
    tk: TestKernel,
) -> None:
    run_id = await tk.create_run("linear", DOC)
    deployed = tk.registry._workflows["linear"]  # a new version is deployed before the claim
    changed = deployed.plan.model_copy(update={"description": "v2"}).with_fingerprint()
    tk.registry._workflows["linear"] = Workflow(
        changed, deployed.implementations, input_model=deployed.input_model
    )
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    assert result.claimed == []
    waiting = await run_of(tk, run_id)
    assert waiting.status is Status.PENDING  # not failed: a worker of its plan may come
    assert (await tk.all_jobs()) == []
    tk.registry._workflows["linear"] = deployed  # a worker of the run's plan comes back
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    assert [c.workflow_run_id for c in result.claimed] == [run_id]


async def test_a_claim_that_raises_fails_that_run_only(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = await tk.create_run("linear", DOC)
    fine = await tk.create_run("fanout", DOC)
    real = opening.open_group

    async def flaky(deps: Any, unit: Any, run: RunRecord, *args: Any, **kwargs: Any) -> None:
        await real(deps, unit, run, *args, **kwargs)
        if run.id == broken:
            raise RuntimeError("disk on fire")  # after the rows were written: they roll back

    monkeypatch.setattr(opening, "open_group", flaky)
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    assert [c.workflow_run_id for c in result.claimed] == [fine]
    failed = await run_of(tk, broken)
    assert failed.status is Status.FAILED and failed.error is not None
    assert (failed.error["code"], failed.error["message"]) == ("CLAIM_FAILED", "disk on fire")
    # The rolled-back claim left no stage rows behind.
    assert await tk.persistence.stages_of_run(broken) == []


async def test_an_orphan_row_that_is_not_pending_gets_no_job(tk: TestKernel) -> None:
    run_id = await tk.create_run("fanout", DOC)
    workflow = tk.registry.get("fanout")
    assert workflow is not None
    run = await run_of(tk, run_id)
    orphan = replace(
        new_stage_row(tk.kernel.deps, run, workflow, "split", generation=0), status=Status.RUNNING
    )
    await tk.persistence.upsert_stage(orphan, {})
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    assert result.claimed[0].job_ids == []
    assert (await stage_of(tk, run_id, "split")).status is Status.RUNNING


async def test_racing_claimers_take_disjoint_runs(tk: TestKernel) -> None:
    created = {await tk.create_run("linear", DOC) for _ in range(7)}
    results = await asyncio.gather(
        *(tk.kernel.dispatch(RunClaimPending(worker_id=f"w{i}", max_claims=3)) for i in range(4))
    )
    claimed = [c.workflow_run_id for r in results for c in r.claimed]
    assert sorted(claimed) == sorted(created)
    assert len(await tk.all_jobs()) == 7
