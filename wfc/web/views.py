"""What each page shows, read through the ports: the runs page (filtered, one keyset page),
a run with its stages, the kept plans, the live workers.

Nothing here knows HTTP: the routes (`wfc.web.app`) parse the request, call one
of these and render the result. Text that came from stage code (errors, log
lines, inputs and outputs) is redacted as `wfc runs show` redacts it: the kernel
stores it redacted already, but rows written before that, or by other code,
must not leak a secret onto a web page either.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from wfc.plan import InputSource, Plan
from wfc.runtime.ai_records import AIStats
from wfc.runtime.kernel import Kernel
from wfc.runtime.kernel.invoke import stage_artifacts
from wfc.runtime.records import (
    TERMINAL,
    ItemRecord,
    LogRecord,
    PlanRecord,
    RunRecord,
    StageRecord,
    Status,
    WorkerRecord,
)
from wfc.runtime.redact import redact, redact_data
from wfc.web.graph import Bar, Layer, layers, timeline

SHOWN_JSON_MAX = 20_000
"""Characters of an input or output shown on the page; the rest is cut (with a note)."""

ITEMS_SHOWN = 200
"""Items of a mapped stage listed on the run page (the first ones; the counts cover all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunsPage:
    """One page of runs, the cursor of the next (None on the last) and what to filter by."""

    runs: list[RunRecord]
    next_before: tuple[datetime, str] | None
    workflows: list[str]


async def runs_page(
    kernel: Kernel,
    *,
    status: Status | None,
    workflow_id: str | None,
    id_prefix: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> RunsPage:
    """A page of runs newest first; one more than `limit` is read to know if another follows."""
    db = kernel.deps.persistence
    found = await db.list_runs(
        status=status,
        workflow_id=workflow_id,
        id_prefix=id_prefix,
        before=before,
        limit=limit + 1,
    )
    runs = found[:limit]
    more = len(found) > limit
    workflows = sorted({plan.workflow_id for plan in await db.list_plans()})
    return RunsPage(
        runs=runs,
        next_before=(runs[-1].created_at, runs[-1].id) if more else None,
        workflows=workflows,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class StageView:
    """A stage on the run page: its row, AI spending, input and output as shown, artifacts
    and its own log lines."""

    row: StageRecord
    cost: AIStats
    input: str | None
    output: str | None
    artifacts: dict[str, str]
    logs: list[LogRecord]
    error: str | None
    children: list[RunRecord] = field(default_factory=list)  # the runs it started, oldest first
    items: list[ItemRecord] = field(default_factory=list)  # a mapped stage's first items
    items_running: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunView:
    """Everything the run page draws."""

    run: RunRecord
    plan: Plan | None
    layers: list[Layer]
    bars: list[Bar]
    stages: list[StageView]
    run_logs: list[LogRecord]
    error: str | None
    terminal: bool
    now: datetime
    stage_ids: list[str] = field(default_factory=list)  # the plan's, for rerun-from


def shown_json(value: Any) -> str:
    """`value` as indented JSON, redacted and cut at `SHOWN_JSON_MAX` characters."""
    text = redact(json.dumps(value, indent=2, default=str, ensure_ascii=False))
    if len(text) > SHOWN_JSON_MAX:
        return text[:SHOWN_JSON_MAX] + f"\n… ({len(text) - SHOWN_JSON_MAX} more characters)"
    return text


def _stage_input(plan: Plan, stage_id: str, run: RunRecord, outputs: dict[str, Any]) -> Any:
    """What a stage took as input, worked out as the kernel does (`resolve_input`) from the
    stored outputs; None when it cannot be known here (an item of a map, a missing output)."""
    stage = next((s for s in plan.stages if s.id == stage_id), None)
    if stage is None or stage.input_source is InputSource.ITEM:
        return None
    if stage.input_source is InputSource.NONE:
        return {}
    if stage.input_source is InputSource.STAGE:
        return outputs.get(stage.input_from or "")
    group = next(i for i, members in enumerate(plan.groups, start=1) if stage_id in members)
    if group == 1:
        return run.input
    previous = plan.groups[group - 2]
    if len(previous) == 1:
        return outputs.get(previous[0])
    return {sid: outputs[sid] for sid in previous if sid in outputs}


async def _outputs(kernel: Kernel, rows: Sequence[StageRecord]) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for row in rows:
        if row.status is Status.COMPLETED and row.output_ref is not None:
            try:
                outputs[row.stage_id] = json.loads(await kernel.deps.blobs.get(row.output_ref))
            except (KeyError, ValueError):  # pruned, or not JSON: shown as missing
                continue
    return outputs


async def load_plan(kernel: Kernel, fingerprint: str, cache: dict[str, Plan]) -> Plan | None:
    """The kept plan with this fingerprint (kept plans never change: cached by it)."""
    if fingerprint not in cache:
        record = await kernel.deps.persistence.get_plan(fingerprint)
        if record is None:
            return None
        cache[fingerprint] = Plan.from_json(record.plan)
    return cache[fingerprint]


async def run_view(kernel: Kernel, run_id: str, plans: dict[str, Plan]) -> RunView | None:
    """The run page's data, or None when there is no such run."""
    db = kernel.deps.persistence
    found = await db.run_with_stages(run_id)
    if found is None:
        return None
    run, rows = found
    rows = sorted(rows, key=lambda r: (r.execution_group, r.stage_number))
    plan = await load_plan(kernel, run.plan_fingerprint, plans)
    outputs = await _outputs(kernel, rows)
    logs = await db.logs_of_run(run_id)
    by_record: dict[str | None, list[LogRecord]] = {}
    for line in logs:
        by_record.setdefault(line.stage_record_id, []).append(
            LogRecord(
                id=line.id,
                run_id=line.run_id,
                stage_record_id=line.stage_record_id,
                level=line.level,
                message=redact(line.message),
                fields=redact_data(line.fields),
                created_at=line.created_at,
            )
        )
    ai_calls = kernel.deps.ai_calls
    children: dict[str, list[RunRecord]] = {}
    for child in await db.children_of(run_id):
        children.setdefault(child.parent_stage_id or "", []).append(child)
    views = []
    for row in rows:
        items = await db.items_of_stage(run_id, row.stage_id) if row.items_total else []
        topic = f"workflow.{run_id}.stage.{row.stage_id}"
        taken = _stage_input(plan, row.stage_id, run, outputs) if plan is not None else None
        views.append(
            StageView(
                row=row,
                cost=await ai_calls.stats(topic) if ai_calls is not None else AIStats(),
                input=None if taken is None else shown_json(taken),
                output=shown_json(outputs[row.stage_id]) if row.stage_id in outputs else None,
                artifacts=await stage_artifacts(kernel.deps.blobs, run, row),
                logs=by_record.get(row.id, []),
                error=None if row.error is None else redact(row.error),
                children=children.get(row.stage_id, []),
                items=[_redacted_item(item) for item in items[:ITEMS_SHOWN]],
                items_running=sum(item.status is Status.RUNNING for item in items),
            )
        )
    now = kernel.deps.clock.now()
    error = None
    if run.error:
        error = redact(str(run.error.get("message", run.error)))
    return RunView(
        run=run,
        plan=plan,
        layers=layers(plan, rows),
        bars=timeline(rows, now),
        stages=views,
        run_logs=by_record.get(None, []),
        error=error,
        terminal=run.status in TERMINAL,
        now=now,
        stage_ids=[s.id for s in plan.stages] if plan is not None else [r.stage_id for r in rows],
    )


def _redacted_item(item: ItemRecord) -> ItemRecord:
    return item if item.error is None else replace(item, error=redact(item.error))


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanView:
    """A kept plan, parsed, and the live workers serving it."""

    record: PlanRecord
    plan: Plan
    served_by: list[str]


async def plan_views(kernel: Kernel, plans: dict[str, Plan]) -> list[PlanView]:
    """The kept plans, the most recently recorded first, each with who serves it now."""
    db = kernel.deps.persistence
    workers = await db.live_workers(kernel.deps.clock.now())
    views = []
    for record in await db.list_plans():
        plan = plans.setdefault(record.fingerprint, Plan.from_json(record.plan))
        served = [w.worker_id for w in workers if record.fingerprint in w.plans]
        views.append(PlanView(record=record, plan=plan, served_by=served))
    return views


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkersView:
    """The live workers, and the workflow of each plan fingerprint they serve."""

    workers: list[WorkerRecord]
    workflow_of: dict[str, str]
    now: datetime


async def workers_view(kernel: Kernel) -> WorkersView:
    db = kernel.deps.persistence
    now = kernel.deps.clock.now()
    workflow_of = {plan.fingerprint: plan.workflow_id for plan in await db.list_plans()}
    return WorkersView(workers=await db.live_workers(now), workflow_of=workflow_of, now=now)
