"""Shared steps of several commands: stage rows, jobs, output blobs, run failure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import pydantic_core

from wfc.plan import DEFAULT_QUEUE
from wfc.runtime.events import StageSkipped, StageStarted, WorkflowFailed
from wfc.runtime.job_records import JobSpec
from wfc.runtime.kernel.deps import AfterCommit, Deps, Unit
from wfc.runtime.kernel.warm import WarmStart
from wfc.runtime.limits import stage_limits
from wfc.runtime.prevalidated import maker
from wfc.runtime.record_builders import builder
from wfc.runtime.records import LogLevel, LogRecord, RunRecord, StageRecord, Status
from wfc.runtime.stage_outputs import StageOutputs
from wfc.runtime.storable import storable_json, storable_text
from wfc.runtime.workflow import Workflow

STAGE_FAILED = "STAGE_FAILED"

# `json.dumps(value, separators=(",", ":"))`, without making an encoder per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
# Built from a row's own typed fields: not validated again (`wfc.runtime.prevalidated`).
_STAGE_STARTED = maker(StageStarted)
_STAGE_SKIPPED = maker(StageSkipped)
# The records every stage of every run builds, without a class call (`record_builders.builder`).
_NEW_STAGE = builder(StageRecord)
_NEW_JOB = builder(JobSpec)


class UnopenableStage(Exception):
    """A stage of a group about to open cannot start from what earlier stages produced
    (a map source that is not a list, a sleep's `until` that is not an instant): the
    opening fails its run with `code` instead of opening the group."""

    def __init__(self, stage_id: str, code: str, message: str) -> None:
        super().__init__(message)
        self.stage_id = stage_id
        self.code = code


def run_prefix(run: RunRecord) -> str:
    """The blob-key prefix of everything the kernel stores for one run."""
    return f"runs/{run.workflow_id}/{run.id}/"


def stage_prefix(run: RunRecord, stage_id: str) -> str:
    """The blob-key prefix of everything the kernel stores for one stage of one run
    (`run_prefix`'s, written out: every stage's outcome comes here twice)."""
    return f"runs/{run.workflow_id}/{run.id}/{stage_id}/"


def output_key(run: RunRecord, stage_id: str) -> str:
    """Where a stage's output is stored: under its `stage_prefix`."""
    return f"runs/{run.workflow_id}/{run.id}/{stage_id}/output.json"


async def save_output(
    deps: Deps, run: RunRecord, stage_id: str, output: Any, text: bytes | None = None
) -> bytes:
    """Store a stage's output as JSON; the text stored, which later stages may be handed
    as the output (`StageOutputs` parses it): immutable, unlike `output`, which the caller
    of `job.execute` gets back in its result and may change. `text`: the output's JSON
    text, when it was written already (`Produced.text`), stored as it is."""
    stored = output_json(output) if text is None else text
    await deps.blobs.put(output_key(run, stage_id), stored)
    return stored


def output_json(output: Any) -> bytes:
    """A stage's output (JSON data) as compact UTF-8 JSON text, which `json.loads` reads
    back equal. pydantic-core writes it five times as fast as the stdlib encoder (a
    10,000-record output: 2.8 against 13.4 ms, paid by every stage that makes one). What
    pydantic-core refuses, such as a lone surrogate, goes to the stdlib encoder, which
    escapes it: an output holding one is refused before it is stored
    (`wfc.runtime.storable`), but a signal's or a child run's data comes here too.
    """
    try:
        return pydantic_core.to_json(output)
    except pydantic_core.PydanticSerializationError:
        return _COMPACT.encode(output).encode()


async def load_outputs(
    deps: Deps, stages: Iterable[StageRecord], known: Mapping[str, Any] | None = None
) -> StageOutputs:
    """The outputs of the COMPLETED stages that stored one (the workflow context), by stage
    id. Outputs in `known` (as stored: JSON text or values, `StageOutputs.held`) are taken
    from it rather than read again; the others' blobs are read now, and none is parsed
    or copied until it is read (`StageOutputs`), so the caller pays for what it reads
    and owns every object it gets, as it would had they been read from the store."""
    held: dict[str, Any] = {}
    for row in stages:
        if row.status is not Status.COMPLETED or row.output_ref is None:
            continue
        if known is not None and row.stage_id in known:
            held[row.stage_id] = known[row.stage_id]
        else:  # `bytes` marks the text to parse (a store may hand back another buffer)
            held[row.stage_id] = bytes(await deps.blobs.get(row.output_ref))
    return StageOutputs(held)


def group_output(workflow: Workflow, group: int, outputs: Mapping[str, Any]) -> Any:
    """A group's output: its stage's output, or `{stage_id: output}` for a parallel group."""
    stage_ids = workflow.group(group)
    if len(stage_ids) == 1:
        return outputs.get(stage_ids[0])
    return {sid: outputs[sid] for sid in stage_ids if sid in outputs}


def new_stage_row(
    deps: Deps,
    run: RunRecord,
    workflow: Workflow,
    stage_id: str,
    *,
    generation: int,
    started_at: datetime | None = None,
    attempt: int = 0,
) -> StageRecord:
    """A new row for one stage of `run`: PENDING, or RUNNING from `started_at` at `attempt`
    for a stage that starts as its row is made (one record built, not two)."""
    plan = workflow.stage(stage_id)
    now = deps.clock.now()
    return _NEW_STAGE(
        id=deps.ids.new_id(),
        run_id=run.id,
        stage_id=stage_id,
        stage_name=plan.name if plan else stage_id,
        stage_number=workflow.stage_number(stage_id),
        execution_group=workflow.group_of(stage_id),
        status=Status.PENDING if started_at is None else Status.RUNNING,
        config=dict(run.config.get(stage_id, {})),
        generation=generation,
        created_at=now,
        updated_at=now,
        started_at=started_at,
        attempt=attempt,
    )


def job_spec(
    run: RunRecord, workflow: Workflow, stage_id: str, *, concurrency_key: str | None = None
) -> JobSpec:
    """The job that executes one stage of `run` (priority: the stage's, else the run's), on
    the stage's queue and under its limits. `concurrency_key`: the key resolved from the
    run's input when `run` was read without it (an item's job carries it on)."""
    defaults = workflow.job_defaults(stage_id)
    limits = None
    if defaults is not None and defaults.limited:
        plan = workflow.stage(stage_id)
        assert plan is not None
        limits = stage_limits(run.workflow_id, plan, run.input)
        if limits is not None and concurrency_key is not None:
            limits = replace(limits, concurrency_key=concurrency_key)
    return _NEW_JOB(
        run_id=run.id,
        workflow_id=run.workflow_id,
        stage_id=stage_id,
        priority=run.priority
        if defaults is None or defaults.priority is None
        else defaults.priority,
        max_attempts=3 if defaults is None else defaults.max_attempts,
        payload={"config": run.config},
        plan_fingerprint=run.plan_fingerprint,
        queue=DEFAULT_QUEUE if defaults is None else defaults.queue,
        limits=limits,
    )


def warm_up(
    deps: Deps, unit: Unit, run: RunRecord, rows: list[StageRecord], known: Mapping[str, Any]
) -> AfterCommit:
    """Register before the group is opened, to run after the commit: a `WarmStart` for each
    stage `unit` started for this worker (`unit.opened`, read when it runs), so its
    execution reads neither the run nor the outputs in `known` again."""

    async def register() -> None:
        started = [row for row in unit.opened if row.status is Status.RUNNING]
        if not started:
            return
        warm = WarmStart(run=run, rows=[*rows, *unit.opened], outputs=known)
        for row in started:
            deps.warm.put(row, warm)

    return register


def stage_started(row: StageRecord, now: datetime) -> StageStarted:
    """The `stage:started` event of a row just marked RUNNING."""
    return _STAGE_STARTED(
        timestamp=now,
        workflow_run_id=row.run_id,
        stage_id=row.stage_id,
        stage_name=row.stage_name,
        stage_number=row.stage_number,
        attempt=row.attempt,
    )


def stage_skipped(row: StageRecord, reason: str, now: datetime) -> StageSkipped:
    """The `stage:skipped` event of a row created SKIPPED."""
    return _STAGE_SKIPPED(
        timestamp=now,
        workflow_run_id=row.run_id,
        stage_id=row.stage_id,
        stage_name=row.stage_name,
        reason=reason,
    )


async def fail_run(
    deps: Deps,
    unit: Unit,
    run: RunRecord,
    *,
    code: str,
    message: str,
    stage_id: str | None = None,
    expected_version: int | None = None,
    details: dict[str, Any] | None = None,
) -> RunRecord:
    """Move a run to FAILED with a structured error and emit `workflow:failed`."""
    now = deps.clock.now()
    error: dict[str, Any] = {"code": code, "message": message, **(details or {})}
    if stage_id is not None:
        error["stage_id"] = stage_id
    failed = await unit.db.update_run(
        run.id,
        {"status": Status.FAILED, "completed_at": now, "error": error},
        expected_version=expected_version,
    )
    unit.emit(WorkflowFailed(timestamp=now, workflow_run_id=run.id, error=message, code=code))
    unit.finished.append(failed)
    return failed


async def write_log(
    deps: Deps,
    run_id: str,
    level: LogLevel,
    message: str,
    *,
    stage_record_id: str | None = None,
    fields: dict[str, Any] | None = None,
) -> None:
    """Write a log line outside any transaction; a failure to log never fails a command."""
    try:
        await deps.persistence.add_log(
            LogRecord(
                id=deps.ids.new_id(),
                run_id=run_id,
                stage_record_id=stage_record_id,
                level=level,
                message=storable_text(message),
                fields=storable_json(fields or {}),
                created_at=deps.clock.now(),
            )
        )
    except Exception:  # logging is best effort by contract (spec §2.5)
        pass


SPENDING_METRICS = ("total_cost", "total_tokens")


def run_totals(rows: Iterable[StageRecord]) -> tuple[float, int]:
    """A run's cost and tokens: the sum of its stages' `total_cost` / `total_tokens` metrics."""
    listed = list(rows)
    cost = sum(float(row.metrics.get("total_cost", 0)) for row in listed)
    tokens = sum(int(row.metrics.get("total_tokens", 0)) for row in listed)
    return cost, tokens


async def refresh_run_totals(
    unit: Unit, run_id: str, metrics: dict[str, float], rows: list[StageRecord] | None = None
) -> RunRecord | None:
    """After a stage that spent (AI calls, or its own cost metrics) completes, bring the run's
    running totals up to date, so a running run shows what it has cost so far.

    `rows` are the run's stages when the caller has just read them; the updated run, or
    None when the stage spent nothing and the run was left alone.
    """
    if metrics.keys().isdisjoint(SPENDING_METRICS):  # every stage asks: no generator
        return None
    if rows is None:
        rows = await unit.db.stages_of_run(run_id)
    cost, tokens = run_totals(rows)
    return await unit.db.update_run(run_id, {"total_cost": cost, "total_tokens": tokens})
