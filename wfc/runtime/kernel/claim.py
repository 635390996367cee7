"""`run.claimPending` (spec §4.7): start PENDING runs, one transaction per run; and the
same claim made by a create, in its own transaction, for a host in its process."""

from __future__ import annotations

from dataclasses import dataclass, field

from wfc.runtime.commands import (
    ClaimedRun,
    RunClaimPending,
    RunClaimPendingResult,
    RunCreate,
    RunCreateResult,
)
from wfc.runtime.events import WorkflowStarted
from wfc.runtime.handoff import RunTaker
from wfc.runtime.kernel.deps import Deps, Unit, atomic
from wfc.runtime.kernel.rows import fail_run, warm_up, write_log
from wfc.runtime.kernel.runs import create_run
from wfc.runtime.kernel.transition import advance
from wfc.runtime.prevalidated import maker
from wfc.runtime.records import RunClaim, RunRecord, Status
from wfc.runtime.transient import is_transient

WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
EMPTY_STAGE_GRAPH = "EMPTY_STAGE_GRAPH"
PLAN_CHANGED = "PLAN_CHANGED"
CLAIM_FAILED = "CLAIM_FAILED"
# Built from a clock's instant and a run's id: not validated again (`wfc.runtime.prevalidated`).
_WORKFLOW_STARTED = maker(WorkflowStarted)


async def claim_pending(deps: Deps, cmd: RunClaimPending) -> RunClaimPendingResult:
    """Claim up to `max_claims` runs (priority, then age) and queue their first group.

    Each run is claimed in its own transaction, so a run that cannot start is
    failed with a reason and never stops the others. Jobs are queued with the
    claim (`Unit.with_jobs`): no worker can see a job whose run is still PENDING.

    A transient error (`wfc.runtime.transient`: the connection dropped, a lock or
    serialization conflict) says nothing about the run: its claim rolled back, so it
    is still PENDING and a later claim takes it. It propagates, unless runs were
    claimed before it, which are returned so the caller starts them now.
    """
    claimed: list[ClaimedRun] = []
    only = cmd.workflow_run_id
    others_pending = True
    for _ in range(cmd.max_claims):
        if not others_pending:
            break  # the last claim saw no other PENDING run: another would find none
        job_ids: list[str] = []
        started: RunRecord | None = None
        claim: RunClaim | None = None
        try:
            async with atomic(deps, deps.ids.new_id()) as unit:
                # Only runs of a plan this kernel serves: another waits for its worker.
                claim = await unit.db.claim_next_pending_run(
                    run_id=only, plans=deps.registry.plans()
                )
                if claim is not None:
                    started = await _start(deps, unit, claim.run, cmd.worker_id, job_ids)
        except Exception as error:
            if is_transient(error):
                if claimed:
                    break  # the database's trouble reaches the caller on its next call
                raise
            if claim is None:
                raise
            await _fail_claim(deps, claim.run, cmd.worker_id, str(error))
            continue
        if claim is None:
            others_pending = False
            break
        others_pending = claim.others_pending
        if started is not None:
            run = claim.run
            claimed.append(
                ClaimedRun(workflow_run_id=run.id, workflow_id=run.workflow_id, job_ids=job_ids)
            )
    return RunClaimPendingResult(claimed=claimed, others_pending=others_pending)


class ClaimAtCreateFailed(Exception):
    """The claim a create made in its own transaction raised: the transaction rolled back
    whole, and the create is made again alone (the run PENDING, claimed as any other, by a
    claim that then deals with the error as `claim_pending` does)."""


@dataclass(slots=True)
class ClaimAtCreate:
    """What a create's claim did (`create_and_claim`), for its host once it has committed."""

    started: str | None = None  # the run it started, if any (not always the new one)
    job_ids: list[str] = field(default_factory=list)
    others_pending: bool = False


async def create_and_claim(
    deps: Deps, unit: Unit, cmd: RunCreate, host: RunTaker, claimed: ClaimAtCreate
) -> RunCreateResult:
    """`run.create`, then the claim `host` would make next, in the same transaction: a run
    created where a worker has a free slot starts without a transaction of its own to
    claim it. The claim is `claim_pending`'s, so it takes the best PENDING run the host
    could take (priority, then age: not always the new one, which then stays PENDING); its
    first stage is handed to the host as the caller's `handing_off_to(host)` says, limited
    jobs and other queues' queued PENDING, as any claim's. Its events follow the create's
    (`workflow:created`, then `workflow:started`, `stage:started`). A claim that raises
    rolls the create back with it (`ClaimAtCreateFailed`): the caller creates again alone."""
    created = await create_run(deps, unit, cmd)
    try:
        await claim_for(deps, unit, host, claimed)
    except Exception as error:
        raise ClaimAtCreateFailed(str(error)) from error
    return created


class ClaimAtOutcomeFailed(Exception):
    """The claim an outcome's transaction made for its freed slot raised: the transaction
    rolled back whole, and the outcome is written again alone (`execute.py`); the run it
    would have claimed stays PENDING, for a claim that deals with the error as
    `claim_pending` does."""


async def claim_for(deps: Deps, unit: Unit, host: RunTaker, claimed: ClaimAtCreate) -> None:
    """In `unit`, the claim `host` would make next (`claim_pending`'s: the best PENDING run
    of the plans served, priority then age), its first stage handed to `host` as the
    caller's `handing_off_to(host)` says; what it did goes in `claimed`. Shared by a
    create (`create_and_claim`) and by the outcome that ends a run on a slot that then
    has nothing to run (`execute.py`): either saves the claim its own transaction."""
    claim = await unit.db.claim_next_pending_run(run_id=host.run_id, plans=deps.registry.plans())
    await start_claimed(deps, unit, claim, host, claimed)


async def start_claimed(
    deps: Deps, unit: Unit, claim: RunClaim | None, host: RunTaker, claimed: ClaimAtCreate
) -> None:
    """`claim_for` once its claim has been read: start the run it took, if any."""
    if claim is not None:
        claimed.others_pending = claim.others_pending
        started = await _start(deps, unit, claim.run, host.worker_id, claimed.job_ids)
        if started is not None:
            claimed.started = started.id


async def _start(
    deps: Deps, unit: Unit, run: RunRecord, worker_id: str, job_ids: list[str]
) -> RunRecord | None:
    workflow = deps.registry.get(run.workflow_id)
    problem: tuple[str, str] | None = None
    if workflow is None:
        problem = (WORKFLOW_NOT_FOUND, f"Workflow {run.workflow_id} not found in registry")
    elif not workflow.group(1):
        problem = (
            EMPTY_STAGE_GRAPH,
            f"Workflow {run.workflow_id} has no stages in execution group 1",
        )
    elif workflow.plan.fingerprint != run.plan_fingerprint:
        problem = (
            PLAN_CHANGED,
            f"Run {run.id} was created with plan {run.plan_fingerprint}; "
            f"this worker has {workflow.plan.fingerprint}",
        )
    if problem is not None:
        code, message = problem
        await fail_run(
            deps, unit, run, code=code, message=message, details={"worker_id": worker_id}
        )

        async def log_failure() -> None:
            await write_log(
                deps, run.id, "ERROR", message, fields={"worker_id": worker_id, "code": code}
            )

        unit.after_commit(log_failure)
        return None
    assert workflow is not None
    unit.after_commit(warm_up(deps, unit, run, [], {}))  # a first stage handed here starts warm
    unit.emit(_WORKFLOW_STARTED(timestamp=deps.clock.now(), workflow_run_id=run.id))
    await advance(deps, unit, run, workflow, 1, rows=[], generation=0, job_ids=job_ids)
    return run


async def _fail_claim(deps: Deps, run: RunRecord, worker_id: str, message: str) -> None:
    """Fail a run whose claim raised a deterministic error (the claim itself was rolled
    back); a transient one never comes here: the run waits, PENDING, for another claim."""
    try:
        async with atomic(deps, deps.ids.new_id()) as unit:
            current = await unit.db.get_run(run.id)
            if current is not None and current.status in (Status.PENDING, Status.RUNNING):
                await fail_run(
                    deps,
                    unit,
                    current,
                    code=CLAIM_FAILED,
                    message=message,
                    details={"worker_id": worker_id},
                )
    finally:
        await write_log(
            deps, run.id, "ERROR", message, fields={"worker_id": worker_id, "code": CLAIM_FAILED}
        )
