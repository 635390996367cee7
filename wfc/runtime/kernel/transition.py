"""`run.transition` (spec §4.9): advance, complete or fail a run whose group is done.

Every write starts with a version-guarded update of the run ("claiming" it),
so of two concurrent transitions exactly one acts and the other is a `noop`:
the next group is never queued twice. `decide_next` is the decision and its
writes on their own, for `job.execute` to run in the transaction that records
a stage's completion, with the run's row locked instead of claimed.
"""

from __future__ import annotations

from typing import Any

from wfc.errors import StaleVersionError
from wfc.runtime.commands import RunTransition, RunTransitionResult
from wfc.runtime.events import WorkflowCompleted, WorkflowStarted
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel.deps import Deps, Unit, atomic
from wfc.runtime.kernel.mapping import is_item_job
from wfc.runtime.kernel.opening import open_next
from wfc.runtime.kernel.rows import (
    STAGE_FAILED,
    fail_run,
    group_output,
    load_outputs,
    run_totals,
)
from wfc.runtime.prevalidated import maker
from wfc.runtime.records import ACTIVE, RunRecord, StageRecord, Status
from wfc.runtime.workflow import Workflow

NOOP = RunTransitionResult(action="noop")
COMPLETED = RunTransitionResult(action="completed")
FAILED = RunTransitionResult(action="failed")
_ADVANCED: dict[int, RunTransitionResult] = {}
# Built from typed values, not validated again (`wfc.runtime.prevalidated`).
_WORKFLOW_STARTED = maker(WorkflowStarted)
_WORKFLOW_COMPLETED = maker(WorkflowCompleted)


def advanced(group: int) -> RunTransitionResult:
    """The result of a transition that opened `group`: results are frozen, so one is made
    per group and shared (a run's every stage returns one)."""
    result = _ADVANCED.get(group)
    if result is None:
        result = _ADVANCED[group] = RunTransitionResult(action="advanced", next_group=group)
    return result


async def transition_run(deps: Deps, cmd: RunTransition, causation_id: str) -> RunTransitionResult:
    """Decide what comes next for the run and do it, or do nothing if it is not time yet.

    A transition that loses the version race rolls back and reports `noop`.
    The run's jobs are read only when a failed stage makes them matter, and
    outside the transaction: on SQLite a second connection inside a write
    transaction would wait for it forever.
    """
    jobs: list[JobRecord] | None = None
    while True:
        try:
            async with atomic(deps, causation_id) as unit:
                return await _transition(deps, unit, cmd, jobs)
        except _LostRace:
            return NOOP
        except NeedJobs:
            jobs = await deps.jobs.jobs_of_run(cmd.workflow_run_id)


async def _transition(
    deps: Deps, unit: Unit, cmd: RunTransition, jobs: list[JobRecord] | None
) -> RunTransitionResult:
    found = await unit.db.run_with_stages(cmd.workflow_run_id)
    if found is None or found[0].status is not Status.RUNNING:
        return NOOP
    run, rows = found
    try:
        return await decide_next(deps, unit, run, rows, jobs, locked=False)
    except StaleVersionError:
        raise _LostRace() from None


async def decide_next(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    rows: list[StageRecord],
    jobs: list[JobRecord] | None,
    *,
    locked: bool,
    known: dict[str, Any] | None = None,
) -> RunTransitionResult:
    """Advance, complete or fail the RUNNING `run` whose stages are `rows`, or do nothing.

    `locked`: the caller holds the run's row lock in this transaction and read
    `rows` after taking it, so no other transition can act in between and the
    claim is skipped. `known` are stage outputs the caller holds, as stored (JSON text
    or values, `StageOutputs.held`), so a completing run need not read them back.
    Raises `NeedJobs` (before writing anything) when a failed stage makes the run's
    jobs matter and `jobs` is None, and `StaleVersionError` when an unlocked claim
    loses the race.
    """
    workflow = deps.registry.get(run.workflow_id)
    if workflow is None or workflow.plan.fingerprint != run.plan_fingerprint:
        return NOOP  # another plan's run: only a worker that serves it moves it on
    if not rows:
        run = await _claim(unit, run, locked)
        unit.emit(_WORKFLOW_STARTED(timestamp=deps.clock.now(), workflow_run_id=run.id))
        return await advance(deps, unit, run, workflow, 1, rows=[], generation=0)
    if any(row.status in ACTIVE for row in rows):
        return NOOP
    failed = [row for row in rows if row.status is Status.FAILED]
    if failed:
        if jobs is None:
            raise NeedJobs()
        retrying = _retrying_stage_ids(jobs)
        final = [row for row in failed if row.stage_id not in retrying]
        if not final:
            return NOOP
        first = final[0]
        await fail_run(
            deps,
            unit,
            run,
            code=STAGE_FAILED,
            message=first.error or "Stage failed",
            stage_id=first.stage_id,
            expected_version=run.version,
        )
        return FAILED
    last_group = max(row.execution_group for row in rows)
    if workflow.group(last_group + 1):
        run = await _claim(unit, run, locked)
        generation = max(row.generation for row in rows)
        return await advance(
            deps, unit, run, workflow, last_group + 1, rows=rows, generation=generation, known=known
        )
    await _complete(deps, unit, run, rows, last_group, known)
    return COMPLETED


async def advance(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    workflow: Workflow,
    group: int,
    *,
    rows: list[StageRecord],
    generation: int,
    known: dict[str, Any] | None = None,
    job_ids: list[str] | None = None,
) -> RunTransitionResult:
    """Open `group`, and the groups after it while every stage of one is skipped; complete
    the run when no group is left. `rows` are the run's rows of earlier groups and `run`
    is claimed or locked by the caller."""
    while True:
        opening = await open_next(
            deps,
            unit,
            run,
            workflow,
            group,
            generation=generation,
            earlier=rows,
            known=known,
            job_ids=job_ids,
        )
        if opening == "failed":
            return FAILED
        if opening == "opened":
            return advanced(group)
        rows = [*rows, *(row for row in unit.opened if row.execution_group == group)]
        if not workflow.group(group + 1):
            await _complete(deps, unit, run, rows, group, known)
            return COMPLETED
        group += 1


class _LostRace(Exception):
    """Another transition claimed the run first; the caller rolls back and reports `noop`."""


class NeedJobs(Exception):
    """A failed stage needs the run's jobs to decide: read them outside the transaction
    (on SQLite a second connection inside a write transaction would wait for it forever)."""


def _retrying_stage_ids(jobs: list[JobRecord]) -> set[str]:
    """Stages with a job that will run again (a retry queued or a delivery in flight). An
    item of a mapped stage is no retry of the stage: a failed map ends its run at once,
    and items still running are discarded when they finish."""
    return {
        job.stage_id
        for job in jobs
        if (job.status is Status.RUNNING or (job.status is Status.PENDING and job.attempt > 0))
        and not is_item_job(job.payload)
    }


async def _claim(unit: Unit, run: RunRecord, locked: bool) -> RunRecord:
    """The run, claimed by a version-guarded write unless the caller holds its lock."""
    if locked:
        return run
    return await unit.db.update_run(run.id, {}, expected_version=run.version)


async def _complete(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    rows: list[StageRecord],
    last_group: int,
    known: dict[str, Any] | None,
) -> None:
    workflow = deps.registry.get(run.workflow_id)
    assert workflow is not None
    # Only the last group's outputs make the run's output.
    last = [row for row in rows if row.execution_group == last_group]
    outputs = await load_outputs(deps, last, known)
    output = group_output(workflow, last_group, outputs)
    total_cost, total_tokens = run_totals(rows)
    now = deps.clock.now()
    started = run.started_at or run.created_at
    duration_ms = max(int((now - started).total_seconds() * 1000), 0)
    completed = await unit.db.update_run(
        run.id,
        {
            "status": Status.COMPLETED,
            "completed_at": now,
            "duration_ms": duration_ms,
            "output": output,
            "total_cost": total_cost,
            "total_tokens": total_tokens,
        },
        expected_version=run.version,
    )
    unit.finished.append(completed)
    unit.emit(
        _WORKFLOW_COMPLETED(
            timestamp=now,
            workflow_run_id=run.id,
            duration_ms=duration_ms,
            output=output,
            total_cost=float(total_cost),  # what validation made of an int sum (`0`)
            total_tokens=total_tokens,
        )
    )
