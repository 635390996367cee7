"""Mapped stages: the list a map runs over, its items queued a few at a time, the gather.

A mapped stage's row is RUNNING from the moment its group opens until its last
item finishes. The row counts what a pass over the items has done: how many
items there are (`items_total`), how many this pass runs (`items_queued`: all,
or the failed ones on a rerun of failed items), how many of those are queued
so far (`items_next`) and how many finished (`items_done`, `items_failed`).

The list is stored once, when the group opens, in chunks of `CHUNK` items, so
an item's execution reads one chunk, never the whole list. At most
`MapSpec.at_most` items are queued at once: the group opens with that many
jobs, and each item that finishes queues the next in the transaction that
records it. The item that finishes last gathers every item's result (one read
of the item rows) into the stage's output, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from wfc.plan import ItemFailure, PlanStage
from wfc.runtime.job_records import JobSpec
from wfc.runtime.kernel.deps import Deps, Unit
from wfc.runtime.kernel.rows import job_spec, stage_prefix
from wfc.runtime.records import ItemRecord, RunRecord, StageRecord, Status
from wfc.runtime.workflow import Workflow

CHUNK = 100
"""Items per stored chunk of a map's list: an item's execution reads one chunk."""

MAP_FAILED = "MAP_FAILED"


class MapSourceError(Exception):
    """The value a stage maps over is not a list (a plan built by hand): the run fails."""


def map_source(stage: PlanStage, run_input: Any, outputs: Mapping[str, Any]) -> list[Any]:
    """The list `stage` maps over, read from the workflow input or an earlier output.
    A missing value (a skipped stage, an absent optional field) is an empty list."""
    assert stage.map is not None
    path = stage.map.over
    value: Any = run_input if path[0] == "input" else outputs.get(path[0])
    for depth, name in enumerate(path[1:], start=1):
        if value is None:
            break
        if not isinstance(value, dict):
            where = ".".join(path[:depth])
            raise MapSourceError(
                f"Stage {stage.id} maps over {'.'.join(path)}, but {where} is a "
                f"{_json_kind(value)}, which has no field {name!r}"
            )
        value = value.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MapSourceError(
            f"Stage {stage.id} maps over {'.'.join(path)}, which is a {_json_kind(value)}, "
            "not a list"
        )
    return value


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "list", str: "string", bool: "boolean"}
    return kinds.get(type(value), "number")


_LIST_FOLDER = "map/"


def _chunk_key(run: RunRecord, stage_id: str, kind: str, chunk: int) -> str:
    return f"{stage_prefix(run, stage_id)}{_LIST_FOLDER}{kind}-{chunk}.json"


def is_map_list(key: str) -> bool:
    """Whether a blob key holds a chunk of a mapped stage's list (or of a rerun's items):
    written again, under the same keys, whenever the stage opens."""
    return f"/{_LIST_FOLDER}" in key


async def _write_chunks(
    deps: Deps, run: RunRecord, stage_id: str, kind: str, values: list[Any]
) -> None:
    for start in range(0, len(values), CHUNK):
        data = json.dumps(values[start : start + CHUNK], separators=(",", ":")).encode()
        await deps.blobs.put(_chunk_key(run, stage_id, kind, start // CHUNK), data)


async def _read_entry(deps: Deps, run: RunRecord, stage_id: str, kind: str, position: int) -> Any:
    chunk = json.loads(await deps.blobs.get(_chunk_key(run, stage_id, kind, position // CHUNK)))
    return chunk[position % CHUNK]


CHUNKS_KEPT = 32
"""Chunks of lists a kernel keeps after reading them (`Deps.map_chunks`)."""


async def item_value(deps: Deps, run: RunRecord, stage_id: str, index: int, generation: int) -> Any:
    """The item at `index` of the list the stage maps over, as stored when it opened for
    `generation`. The chunk is kept for the next items: the list is written once per
    generation (a rerun that opens the stage again moves the generation on), so a kept
    chunk is never stale, and a worker's items are mostly neighbours."""
    key = (_chunk_key(run, stage_id, "items", index // CHUNK), generation)
    chunk = deps.map_chunks.get(key)
    if chunk is None:
        chunk = json.loads(await deps.blobs.get(key[0]))
        deps.map_chunks[key] = chunk
        if len(deps.map_chunks) > CHUNKS_KEPT:
            deps.map_chunks.popitem(last=False)
    else:
        deps.map_chunks.move_to_end(key)
    return chunk[index % CHUNK]


async def index_at(deps: Deps, run: RunRecord, row: StageRecord, position: int) -> int:
    """The item index of the pass's `position`-th entry: itself on a first pass, else
    the `position`-th of the failed items a rerun runs again."""
    if row.items_queued == row.items_total:
        return position
    index: int = await _read_entry(deps, run, row.stage_id, "todo", position)
    return index


def item_spec(
    run: RunRecord,
    workflow: Workflow,
    stage_id: str,
    index: int,
    generation: int,
    attempts_made: int = 0,
    *,
    config: dict[str, Any] | None = None,
    concurrency_key: str | None = None,
) -> JobSpec:
    """The job that runs one item of a mapped stage. `config` and `concurrency_key`: the
    run's config and the job's key, when `run` was read without its data
    (`Persistence.run_with_stages(data=False)`): an item's job carries them on from the
    item that queued it."""
    spec = job_spec(run, workflow, stage_id, concurrency_key=concurrency_key)
    carried = spec.payload if config is None else {**spec.payload, "config": config}
    payload = {**carried, "item": index, "generation": generation}
    return replace(spec, payload=payload, attempts_made=attempts_made)


def reports_progress(index: int, total: int) -> bool:
    """Whether item `index` of `total` says how far its stage is (a `stage:progress`
    event when it finishes): about every twentieth item, decided by the index alone, so
    that concurrent items do not all wait for the one whose count would be a twentieth."""
    return index % max(total // 20, 1) == 0


def is_item_job(payload: dict[str, Any]) -> bool:
    """Whether a job runs one item of a mapped stage (not a whole stage)."""
    return "item" in payload


def opened_row(fresh: StageRecord, stage: PlanStage, count: int, now: datetime) -> StageRecord:
    """The row of a mapped stage whose group opens with `count` items: RUNNING, with the
    first `at_most` items queued."""
    assert stage.map is not None
    return replace(
        fresh,
        status=Status.RUNNING,
        started_at=now,
        items_total=count,
        items_queued=count,
        items_next=min(count, stage.map.at_most),
    )


async def first_items(
    deps: Deps, run: RunRecord, workflow: Workflow, row: StageRecord, values: list[Any]
) -> list[JobSpec]:
    """Store the list and return the jobs of the items the row says are queued first."""
    await _write_chunks(deps, run, row.stage_id, "items", values)
    return [
        item_spec(run, workflow, row.stage_id, index, row.generation)
        for index in range(row.items_next)
    ]


async def rerun_unfinished(
    deps: Deps, unit: Unit, run: RunRecord, workflow: Workflow, row: StageRecord
) -> list[JobSpec]:
    """Reopen a mapped stage for the items that did not complete (failed, cancelled, or
    never started because another failed): the row RUNNING again, at the next generation,
    with a pass over those items; the items reset; the jobs of the first `at_most`."""
    stage = workflow.stage(row.stage_id)
    assert stage is not None and stage.map is not None
    done = await unit.db.items_of_stage(run.id, row.stage_id, statuses=[Status.COMPLETED])
    completed = {item.item_index for item in done}
    indices = [index for index in range(row.items_total) if index not in completed]
    generation = row.generation + 1
    await _write_chunks(deps, run, row.stage_id, "todo", indices)
    unfinished = [status for status in Status if status is not Status.COMPLETED]
    await unit.db.reset_items(run.id, row.stage_id, unfinished, generation)
    first = min(len(indices), stage.map.at_most)
    await unit.db.update_stage(
        row.id,
        {
            "status": Status.RUNNING,
            "generation": generation,
            "attempt": 0,
            "completed_at": None,
            "duration_ms": None,
            "error": None,
            "output_ref": None,
            "items_queued": len(indices),
            "items_next": first,
            "items_failed": 0,
            "items_done": len(completed),
        },
    )
    return [item_spec(run, workflow, row.stage_id, index, generation) for index in indices[:first]]


async def next_items(
    deps: Deps,
    run: RunRecord,
    workflow: Workflow,
    row: StageRecord,
    generation: int,
    config: dict[str, Any],
    concurrency_key: str | None,
) -> tuple[int, list[JobSpec]]:
    """After an item finished on `row` (its counters as read under the run's lock): the
    new `items_next` and the job of the next item, if one is left to queue."""
    if row.items_next >= row.items_queued:
        return row.items_next, []
    index = await index_at(deps, run, row, row.items_next)
    spec = item_spec(
        run,
        workflow,
        row.stage_id,
        index,
        generation,
        config=config,
        concurrency_key=concurrency_key,
    )
    return row.items_next + 1, [spec]


async def gathered(
    unit: Unit, run: RunRecord, stage: PlanStage
) -> tuple[list[Any], dict[str, float]]:
    """The mapped stage's output (its items' results in item order) and its metrics: the
    items' cost and tokens added up."""
    assert stage.map is not None
    items = await unit.db.items_of_stage(run.id, stage.id)
    output = [_result(stage, item) for item in items]
    metrics: dict[str, float] = {"items": float(len(items))}
    for name in ("total_cost", "total_tokens"):
        spent = sum(float(item.metrics.get(name, 0)) for item in items)
        if spent:
            metrics[name] = spent
    return output, metrics


def _result(stage: PlanStage, item: ItemRecord) -> Any:
    assert stage.map is not None
    if stage.map.on_item_failure is ItemFailure.FAIL:
        return item.output
    completed = item.status is Status.COMPLETED
    return {
        "index": item.item_index,
        "output": item.output if completed else None,
        "error": None if completed else item.error,
    }
