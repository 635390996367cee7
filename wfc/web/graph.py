"""The run page's pictures, as data the templates draw: the plan by execution group, each
stage coloured by status, and a timeline bar per stage.

Drawn with HTML boxes, not a graph layout engine: a wfc plan is a sequence of
execution groups (a group of several stages runs them in parallel), so one row
per group, its stages side by side, says everything a flow says. A run whose
plan is not kept any more is drawn from its stage rows, grouped the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from wfc.plan import Plan
from wfc.runtime.records import StageRecord, Status
from wfc.web.format import duration

NOT_STARTED = "NOT STARTED"
"""The status shown for a stage of the plan that has no row yet (its group is ahead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Box:
    """One stage as drawn: its status, and for a mapped stage its items done of total."""

    stage_id: str
    name: str
    status: str
    items: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """An execution group: its stages run in parallel when there are several."""

    number: int
    boxes: tuple[Box, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """A stage's span on the run's timeline, in percent of the whole."""

    stage_id: str
    status: str
    offset: float
    width: float
    label: str


def _items(row: StageRecord | None) -> str | None:
    if row is None or not row.items_total:
        return None
    failed = f", {row.items_failed} failed" if row.items_failed else ""
    return f"{row.items_done}/{row.items_total} items{failed}"


def layers(plan: Plan | None, rows: Sequence[StageRecord]) -> list[Layer]:
    """The groups to draw: the plan's (stages without a row are NOT STARTED), or, with no
    plan, the stage rows by execution group."""
    by_id = {row.stage_id: row for row in rows}
    if plan is None:
        groups: dict[int, list[StageRecord]] = {}
        for row in sorted(rows, key=lambda r: (r.execution_group, r.stage_number)):
            groups.setdefault(row.execution_group, []).append(row)
        return [
            Layer(
                number=number,
                boxes=tuple(
                    Box(stage_id=r.stage_id, name=r.stage_name, status=r.status, items=_items(r))
                    for r in members
                ),
            )
            for number, members in groups.items()
        ]
    stages = {stage.id: stage for stage in plan.stages}
    drawn = []
    for number, group in enumerate(plan.groups, start=1):
        boxes = []
        for stage_id in group:
            stage, found = stages[stage_id], by_id.get(stage_id)
            notes = tuple(
                note
                for note, present in (
                    ("map", stage.map is not None),
                    ("when", stage.when is not None),
                    ("polls", stage.poll is not None),
                )
                if present
            )
            boxes.append(
                Box(
                    stage_id=stage_id,
                    name=stage.name,
                    status=found.status if found is not None else NOT_STARTED,
                    items=_items(found),
                    notes=notes,
                )
            )
        drawn.append(Layer(number=number, boxes=tuple(boxes)))
    return drawn


def timeline(rows: Sequence[StageRecord], now: datetime) -> list[Bar]:
    """A bar per stage that started, from `started_at` to `completed_at` (to `now` while it
    still runs), on a scale from the first start to the last end."""
    started = [row for row in rows if row.started_at is not None]
    if not started:
        return []
    spans = []
    for row in sorted(started, key=lambda r: (r.started_at or now, r.stage_number)):
        assert row.started_at is not None
        end = row.completed_at or (row.started_at if row.status in _STOPPED else now)
        spans.append((row, row.started_at, max(end, row.started_at)))
    first = min(start for _, start, _ in spans)
    total_ms = max((max(end for _, _, end in spans) - first).total_seconds() * 1000, 1.0)
    bars = []
    for row, start, end in spans:
        offset_ms = (start - first).total_seconds() * 1000
        length_ms = (end - start).total_seconds() * 1000
        bars.append(
            Bar(
                stage_id=row.stage_id,
                status=row.status,
                offset=round(100 * offset_ms / total_ms, 2),
                width=round(max(100 * length_ms / total_ms, 0.5), 2),
                label=duration(length_ms) + ("…" if row.completed_at is None else ""),
            )
        )
    return bars


# A stage in one of these without `completed_at` is not moving: its bar does not grow.
_STOPPED = frozenset({Status.CANCELLED, Status.SKIPPED, Status.FAILED, Status.PENDING})
