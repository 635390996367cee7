"""`lease.reapStale` and `run.reapStuck` (spec §4.12, §4.13): recovery from lost workers.

A worker that dies mid-stage leaves its job leased; `lease.reapStale` puts
such jobs back in the queue. A run can also lose its way entirely (a crash
between a commit and the enqueue after it, where the job queue does not share
the transaction; a bug; a row edited by hand); `run.reapStuck` finds RUNNING
runs with no activity for a long time and repairs them: open stages with no
live job get one again, a run whose stages are all finished is transitioned,
and only a run that cannot be repaired is failed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

from wfc.errors import StaleVersionError
from wfc.runtime.commands import (
    LeaseReapStale,
    LeaseReapStaleResult,
    RunReapStuck,
    RunReapStuckResult,
    RunTransition,
)
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel.deps import Deps, atomic
from wfc.runtime.kernel.rows import fail_run, job_spec
from wfc.runtime.kernel.transition import transition_run
from wfc.runtime.records import RunRecord, StageRecord, Status

STUCK_RUN_REAPED = "STUCK_RUN_REAPED"
_LIVE = (Status.PENDING, Status.RUNNING)


async def reap_stale(deps: Deps, cmd: LeaseReapStale) -> LeaseReapStaleResult:
    """Release leases older than the threshold (their stages run again on re-delivery)."""
    cutoff = deps.clock.now() - timedelta(milliseconds=cmd.stale_threshold_ms)
    released = await deps.jobs.release_stale(cutoff)
    return _NONE_RELEASED if released == 0 else LeaseReapStaleResult(released=released)


# What most ticks answer: results are frozen, so these are made once.
_NONE_RELEASED = LeaseReapStaleResult(released=0)
_NONE_STUCK = RunReapStuckResult()


async def reap_stuck(deps: Deps, cmd: RunReapStuck) -> RunReapStuckResult:
    """Repair or fail runs with no run or stage update for `stuck_threshold_ms`."""
    since = deps.clock.now() - timedelta(milliseconds=cmd.stuck_threshold_ms)
    stuck = await deps.persistence.stuck_runs(since)
    if not stuck:
        return _NONE_STUCK
    tally = Counter[str]()
    for run in stuck:
        rows = await deps.persistence.stages_of_run(run.id)
        jobs = await deps.jobs.jobs_of_run(run.id)
        if (
            any(job.status in _LIVE for job in jobs)
            or any(row.status is Status.SUSPENDED for row in rows)
            or await _items_suspended(deps, run.id, rows)
        ):
            continue  # a worker or the poller still owns this run
        open_rows = [row for row in rows if row.status in _LIVE]
        if not open_rows:
            action = await transition_run(
                deps, RunTransition(workflow_run_id=run.id), deps.ids.new_id()
            )
            tally["transitioned"] += action.action != "noop"
            continue
        exhausted = [row for row in open_rows if _attempts_used_up(row, jobs)]
        workflow = deps.registry.get(run.workflow_id)
        if workflow is None or exhausted:
            tally["failed"] += await _fail_stuck(deps, run, rows, cmd.stuck_threshold_ms)
            continue
        tally["recovered"] += await _requeue(deps, run, open_rows)
    return RunReapStuckResult(
        recovered=tally["recovered"], transitioned=tally["transitioned"], failed=tally["failed"]
    )


async def _items_suspended(deps: Deps, run_id: str, rows: list[StageRecord]) -> bool:
    """Whether a running mapped stage has items waiting to be polled."""
    for row in rows:
        if row.status is Status.RUNNING and row.items_total:
            suspended = [Status.SUSPENDED]
            if await deps.persistence.items_of_stage(run_id, row.stage_id, statuses=suspended):
                return True
    return False


def _attempts_used_up(row: StageRecord, jobs: list[JobRecord]) -> bool:
    mine = [job for job in jobs if job.stage_id == row.stage_id]
    return (
        bool(mine)
        and all(job.status is Status.FAILED for job in mine)
        and any(job.attempt >= job.max_attempts for job in mine)
    )


async def _requeue(deps: Deps, run: RunRecord, open_rows: list[StageRecord]) -> int:
    """Queue a job for each open stage; bump the run so it is not seen as stuck again at once."""
    workflow = deps.registry.get(run.workflow_id)
    assert workflow is not None
    # Each job continues its stage's count of deliveries, so the next one is newer than
    # any the row has seen and the stage's max attempts still hold.
    specs = [
        replace(job_spec(run, workflow, row.stage_id), attempts_made=row.attempt)
        for row in open_rows
    ]
    async with atomic(deps, deps.ids.new_id()) as unit:
        current = await unit.db.get_run(run.id)
        if current is None or current.status is not Status.RUNNING:
            return 0
        await unit.db.update_run(run.id, {}, expected_version=current.version)

        async def enqueue() -> None:
            await deps.jobs.enqueue(specs)

        await unit.with_jobs(enqueue)
    return 1


async def _fail_stuck(
    deps: Deps, run: RunRecord, rows: list[StageRecord], threshold_ms: int
) -> int:
    try:
        async with atomic(deps, deps.ids.new_id()) as unit:
            await fail_run(
                deps,
                unit,
                run,
                code=STUCK_RUN_REAPED,
                message=f"Stuck run reaped after {threshold_ms}ms inactivity",
                expected_version=run.version,
                details={
                    "stage_statuses": [
                        {"stage_id": r.stage_id, "status": r.status.value} for r in rows
                    ]
                },
            )
    except StaleVersionError:
        return 0
    return 1
