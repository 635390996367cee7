"""Opening an execution group: its rows, its jobs, its skipped and its mapped stages.

A transition opens the next group in the transaction that decides it. Which
stages are skipped is decided first (`wfc.runtime.kernel.skipping`); a mapped
stage's list is read then too, so a broken `when` or a value that is not a
list fails the run before anything is queued. A group in which nothing is
left to run (every stage skipped, or mapped over an empty list) is done as
soon as it opens, and the caller goes on to the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from wfc.runtime.copies import changed
from wfc.runtime.events import StageCompleted
from wfc.runtime.handoff import handed_specs
from wfc.runtime.job_records import JobSpec
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.kernel.mapping import (
    MAP_FAILED,
    MapSourceError,
    first_items,
    map_source,
    opened_row,
)
from wfc.runtime.kernel.rows import (
    UnopenableStage,
    fail_run,
    job_spec,
    load_outputs,
    new_stage_row,
    output_key,
    save_output,
    stage_skipped,
    stage_started,
)
from wfc.runtime.kernel.skipping import BrokenCondition, Skip, skip_decisions
from wfc.runtime.kernel.waits import open_builtin, wake_times
from wfc.runtime.records import RunRecord, StageRecord, Status
from wfc.runtime.workflow import Workflow

CONDITION_FAILED = "CONDITION_FAILED"

Opening = Literal["opened", "skipped", "failed"]
"""`skipped`: nothing in the group is left to run (skipped, or mapped over no items)."""


async def open_next(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    workflow: Workflow,
    group: int,
    *,
    generation: int,
    earlier: Sequence[StageRecord],
    known: dict[str, Any] | None = None,
    job_ids: list[str] | None = None,
) -> Opening:
    """Open `group` with its skipped stages decided: `opened` when a stage of it runs,
    `skipped` when none does (the caller goes on to the next group), `failed` when a
    condition could not be evaluated (the run was failed here)."""
    if workflow.plain_group(group) and not any(row.status is Status.SKIPPED for row in earlier):
        # Nothing to decide: no `when`, map or timer, and nothing it needs was skipped.
        await open_group(deps, unit, run, workflow, group, generation=generation, job_ids=job_ids)
        return "opened"
    decisions = await skip_decisions(deps, run, workflow, group, earlier, known)
    for stage_id, decision in decisions.items():
        if isinstance(decision, BrokenCondition):
            await fail_run(
                deps, unit, run, code=CONDITION_FAILED, message=decision.error, stage_id=stage_id
            )
            return "failed"
    skipped = {stage_id: d.reason for stage_id, d in decisions.items() if isinstance(d, Skip)}
    try:
        mapped = await _map_sources(deps, run, workflow, group, earlier, known, skipped)
        timers = await wake_times(deps, run, workflow, group, earlier, known, skipped)
    except UnopenableStage as broken:
        await fail_run(
            deps, unit, run, code=broken.code, message=str(broken), stage_id=broken.stage_id
        )
        return "failed"
    await open_group(
        deps,
        unit,
        run,
        workflow,
        group,
        generation=generation,
        job_ids=job_ids,
        skipped=skipped,
        mapped=mapped,
        timers=timers,
    )
    empty = {stage_id for stage_id, values in mapped.items() if not values}
    # A signal wait whose signal had come completed as it opened (`kernel.waits`).
    done = {
        row.stage_id
        for row in unit.opened
        if row.execution_group == group
        and row.status is Status.COMPLETED
        and _builtin(workflow, row.stage_id)
    }
    finished = len(skipped) + len(empty) + len(done) == len(workflow.group(group))
    return "skipped" if finished else "opened"


async def _map_sources(
    deps: Deps,
    run: RunRecord,
    workflow: Workflow,
    group: int,
    earlier: Sequence[StageRecord],
    known: dict[str, Any] | None,
    skipped: Mapping[str, str],
) -> dict[str, list[Any]]:
    """The list each mapped stage of `group` that runs maps over, by stage id."""
    mapped: dict[str, list[Any]] = {}
    for stage_id in workflow.group(group):
        stage = workflow.stage(stage_id)
        if stage is None or stage.map is None or stage_id in skipped:
            continue
        read = [row for row in earlier if row.stage_id == stage.map.over[0]]
        outputs = await load_outputs(deps, read, known)
        try:
            mapped[stage_id] = map_source(stage, run.input, outputs)
        except MapSourceError as error:
            raise UnopenableStage(stage_id, MAP_FAILED, str(error)) from None
    return mapped


async def open_group(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    workflow: Workflow,
    group: int,
    *,
    generation: int,
    job_ids: list[str] | None = None,
    skipped: Mapping[str, str] | None = None,
    mapped: Mapping[str, list[Any]] | None = None,
    timers: Mapping[str, datetime] | None = None,
) -> None:
    """Create a group's rows and queue a job per row still open (`Unit.with_jobs`).

    Rows that already exist (an orphan left by a crash) are kept as they are;
    only PENDING ones get a job. Stages whose jobs will be handed to the
    worker running this command (`wfc.runtime.handoff`) start here: their rows
    are created RUNNING with `stage:started`, so `job.execute` has no start to
    record and the next stage begins one transaction after the last one ended.
    Stages in `skipped` (stage id → why) get a SKIPPED row and `stage:skipped`,
    and no job (`wfc.runtime.kernel.skipping`). A stage in `mapped` (stage id → the
    list it maps over) starts RUNNING with the jobs of its first items
    (`wfc.runtime.kernel.mapping`), or completes at once over an empty list. A built-in
    stage (a sleep or a signal wait, at its time in `timers`) opens SUSPENDED with its
    timer queued (`wfc.runtime.kernel.waits`).
    """
    skipped = skipped or {}
    mapped = mapped or {}
    stage_ids = workflow.group(group)
    if workflow.plain_group(group) and not skipped:
        builtins: set[str] = set()
        running = list(stage_ids)
    else:
        builtins = {sid for sid in stage_ids if sid not in skipped and _builtin(workflow, sid)}
        running = [
            sid
            for sid in stage_ids
            if sid not in skipped and sid not in mapped and sid not in builtins
        ]
    candidates = {stage_id: job_spec(run, workflow, stage_id) for stage_id in running}
    _, starting = handed_specs(list(candidates.values()))
    handed = {running[position] for position in starting}
    now = deps.clock.now()
    specs: list[JobSpec] = []
    for stage_id in stage_ids:
        if stage_id in builtins:
            wake_at = (timers or {}).get(stage_id)
            await open_builtin(
                deps,
                unit,
                run,
                workflow,
                stage_id,
                generation=generation,
                wake_at=wake_at,
                specs=specs,
            )
            continue
        if stage_id in handed:  # started here, for the worker it is handed to
            fresh = new_stage_row(
                deps, run, workflow, stage_id, generation=generation, started_at=now, attempt=1
            )
        else:
            fresh = new_stage_row(deps, run, workflow, stage_id, generation=generation)
        if stage_id in skipped:
            fresh = changed(fresh, {"status": Status.SKIPPED, "completed_at": now})
        elif stage_id in mapped:
            fresh = _mapped_row(run, workflow, fresh, len(mapped[stage_id]))
        row = await unit.db.upsert_stage(fresh, {})
        created = row.id == fresh.id
        if created:
            unit.opened.append(row)
        if stage_id in mapped:
            if created:
                specs.extend(await _open_map(deps, unit, run, workflow, row, mapped[stage_id]))
            continue
        if created and row.status is Status.SKIPPED:
            unit.emit(stage_skipped(row, skipped[stage_id], now))
        started_here = created and row.status is Status.RUNNING
        if started_here:
            unit.emit(stage_started(row, now))
        if row.status is Status.PENDING or started_here:
            specs.append(candidates[stage_id])
    await _enqueue(deps, unit, specs, job_ids)


def _builtin(workflow: Workflow, stage_id: str) -> bool:
    """A sleep or a signal wait (a child-workflow stage opens as others do, with a job)."""
    stage = workflow.stage(stage_id)
    return stage is not None and stage.builtin and stage.child is None


async def _enqueue(deps: Deps, unit: Unit, specs: list[JobSpec], job_ids: list[str] | None) -> None:

    async def enqueue() -> None:
        ids = await deps.jobs.enqueue(specs, completing=unit.take_completing())
        if job_ids is not None:
            job_ids.extend(ids)

    # `Unit.with_jobs` written out: every group a run opens passes here, and its coroutine
    # was a layer of its own per group for a choice made by one flag.
    if not specs:
        return
    if unit.shared:
        await enqueue()
    else:
        unit.after_commit(enqueue)


def _mapped_row(run: RunRecord, workflow: Workflow, fresh: StageRecord, count: int) -> StageRecord:
    """The new row of a mapped stage over `count` items (COMPLETED at once when none)."""
    stage = workflow.stage(fresh.stage_id)
    assert stage is not None
    now = fresh.created_at
    if count:
        return opened_row(fresh, stage, count, now)
    return replace(
        fresh,
        status=Status.COMPLETED,
        started_at=now,
        completed_at=now,
        duration_ms=0,
        output_ref=output_key(run, fresh.stage_id),
        metrics={"items": 0.0},
    )


async def _open_map(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    workflow: Workflow,
    row: StageRecord,
    values: list[Any],
) -> list[JobSpec]:
    """The events of a mapped stage's new row, and the jobs of its first items."""
    now = row.created_at
    unit.emit(stage_started(row, now))
    if row.status is Status.COMPLETED:
        await save_output(deps, run, row.stage_id, [])
        unit.emit(
            StageCompleted(
                timestamp=now,
                workflow_run_id=run.id,
                stage_id=row.stage_id,
                stage_name=row.stage_name,
                duration_ms=0,
            )
        )
        return []
    return await first_items(deps, run, workflow, row, values)
