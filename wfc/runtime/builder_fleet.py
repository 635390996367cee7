"""Queues, fleet limits and schedules for the Python builder, checked as the compiler checks them.

`define_stage(queue=…, concurrency=…, concurrency_per=…, rate=…, rate_shared=…)` and
`WorkflowBuilder(queue=…, schedules=[…])` take plain values and build the plan's
`ConcurrencyLimit`, `RateLimit` and `ScheduleSpec`. A plan from the builder
reaches the same scheduler as a compiled one, so the same mistakes are refused
here, when the workflow is built, with the rules `wfc.fleet_rules` keeps for
both: a queue name, a rate unit, a cron expression, a time zone, a `per` path
that ends at one scalar field of the workflow input, a schedule input the
input model accepts, a shared rate described one way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from wfc.fleet_rules import (
    RATE_UNITS_MS,
    cron_problem,
    name_problem,
    nearest_timezone,
    timezone_problem,
)
from wfc.plan import ConcurrencyLimit, PlanStage, RateLimit, ScheduleSpec

_RATE_TEXT = re.compile(r"\s*([0-9]+)\s*(?:per|/)\s*([a-z]+)\s*")
_PATH_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def queue_name(owner: str, queue: str | None) -> str | None:
    """`queue` once it is a valid queue name (`owner` says whose, for the message)."""
    if queue is None:
        return None
    problem = name_problem(queue, "the queue name")
    if problem is not None:
        raise ValueError(f"{owner}: {problem} (1 to 100 letters, digits, _, . or -)")
    return queue


def concurrency_limit(
    stage_id: str, concurrency: int | ConcurrencyLimit | None, per: str | Sequence[str] | None
) -> ConcurrencyLimit | None:
    """`concurrency=2, concurrency_per="input.customer_id"` (or a `ConcurrencyLimit`)."""
    if concurrency is None:
        if per is not None:
            raise ValueError(f'Stage "{stage_id}": concurrency_per needs concurrency= too')
        return None
    if isinstance(concurrency, ConcurrencyLimit):
        if per is not None:
            raise ValueError(
                f'Stage "{stage_id}": give per inside the ConcurrencyLimit or as '
                "concurrency_per, not both"
            )
        limit = concurrency
    else:
        limit = ConcurrencyLimit(max=_count(stage_id, "concurrency", concurrency), per=_path(per))
    if limit.per and limit.per[0] != "input":
        raise ValueError(
            f'Stage "{stage_id}": concurrency_per reads the workflow input, so it starts at '
            f'"input" (e.g. "input.customer_id"), not {".".join(limit.per)!r}'
        )
    return limit


def rate_limit(stage_id: str, rate: str | RateLimit | None, shared: str | None) -> RateLimit | None:
    """`rate="50 per minute", rate_shared="openai"` (or a `RateLimit`)."""
    if rate is None:
        if shared is not None:
            raise ValueError(f'Stage "{stage_id}": rate_shared needs rate= too')
        return None
    if isinstance(rate, RateLimit):
        if shared is not None:
            raise ValueError(
                f'Stage "{stage_id}": give shared inside the RateLimit or as rate_shared, not both'
            )
        limit = rate
    else:
        found = _RATE_TEXT.fullmatch(rate)
        units = ", ".join(RATE_UNITS_MS)
        if found is None or found.group(2) not in RATE_UNITS_MS:
            raise ValueError(
                f'Stage "{stage_id}": rate must read like "50 per minute" (units: {units}), '
                f"not {rate!r}"
            )
        window = RATE_UNITS_MS[found.group(2)]
        count = _count(stage_id, "rate", int(found.group(1)))
        limit = RateLimit(max=count, window_ms=window, shared=shared)
    if limit.shared is not None:
        problem = name_problem(limit.shared, "the shared limit's name")
        if problem is not None:
            raise ValueError(f'Stage "{stage_id}": {problem}')
    return limit


def _count(stage_id: str, what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f'Stage "{stage_id}": {what} must be a whole number of at least 1, not {value!r}'
        )
    return value


def _path(per: str | Sequence[str] | None) -> tuple[str, ...]:
    if per is None:
        return ()
    path = tuple(per.split(".")) if isinstance(per, str) else tuple(per)
    if not path or not all(isinstance(p, str) and _PATH_PART.fullmatch(p) for p in path):
        raise ValueError(f'concurrency_per must be a path such as "input.customer_id", not {per!r}')
    return path


# -- checks over the whole workflow ------------------------------------------------


def schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """The node of the JSON schema `schema` at `path` (after its first part, which names
    the value the schema describes), and the path as read; `LookupError` naming the
    missing field. References are followed, and so is a field that may be null."""
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref", "")
        if ref:
            return resolve(defs.get(ref.rsplit("/", 1)[-1], {}))
        choices = [c for c in node.get("anyOf", []) if c.get("type") != "null"]
        return resolve(choices[0]) if len(choices) == 1 else node

    node, read = resolve(schema), path[0]
    for part in path[1:]:
        properties = node.get("properties", {})
        if part not in properties:
            known = ", ".join(sorted(properties)) or "none"
            raise LookupError(f'"{read}" has no field "{part}" (its fields: {known})')
        node, read = resolve(properties[part]), f"{read}.{part}"
    return node, read


def check_per_path(stage: PlanStage, input_schema: dict[str, Any]) -> None:
    """A stage's `per` path ends at one scalar field of the workflow input."""
    if stage.concurrency is None or not stage.concurrency.per:
        return
    path = stage.concurrency.per
    try:
        node, read = schema_at(input_schema, path)
    except LookupError as missing:
        raise ValueError(
            f'Stage "{stage.id}": concurrency_per "{".".join(path)}": {missing.args[0]}'
        ) from None
    if "enum" not in node and node.get("type") not in ("string", "integer", "boolean"):
        raise ValueError(
            f'Stage "{stage.id}": concurrency_per "{read}" must be one str, int, bool or enum '
            "field: its value is the key the limit holds for"
        )


def check_shared_rates(stages: Iterable[PlanStage]) -> None:
    """Every stage that names a shared rate describes it alike: it is one budget."""
    seen: dict[str, tuple[str, RateLimit]] = {}
    for stage in stages:
        if stage.rate is None or stage.rate.shared is None:
            continue
        first_id, first = seen.setdefault(stage.rate.shared, (stage.id, stage.rate))
        if first != stage.rate:
            raise ValueError(
                f'Stages "{first_id}" and "{stage.id}" name the shared rate '
                f'"{stage.rate.shared}" with different limits: give both the same max and window'
            )


def schedules(
    specs: Iterable[ScheduleSpec], input_model: type[BaseModel] | None
) -> tuple[ScheduleSpec, ...]:
    """The schedules, once each cron, time zone and input is one a tick can use."""
    found: list[ScheduleSpec] = []
    for spec in specs:
        owner = f'Schedule "{spec.name}"'
        problem = cron_problem(spec.cron)
        if problem is not None:
            raise ValueError(f"{owner}: invalid cron expression {spec.cron!r}: {problem}")
        problem = timezone_problem(spec.timezone)
        if problem is not None:
            nearest = nearest_timezone(spec.timezone)
            hint = f' (did you mean "{nearest}"?)' if nearest else ""
            raise ValueError(f"{owner}: {problem}{hint}")
        if input_model is not None:
            try:
                input_model.model_validate(spec.input)
            except ValidationError as error:
                raise ValueError(
                    f"{owner}: its input is not a valid workflow input: {error}"
                ) from error
        elif spec.input:
            raise ValueError(f"{owner}: the workflow takes no input, so the schedule gives none")
        if any(s.name == spec.name for s in found):
            raise ValueError(f"{owner} is declared twice")
        found.append(spec)
    return tuple(found)
