"""Fleet-wide limits: from a stage's `concurrency` and `rate` to the keys its jobs carry.

A limit is enforced where jobs are leased, by the database every worker shares
(`JobTransport.dequeue`), so it holds with any number of workers on any number
of machines. Each job carries its limits resolved for its run: the key a
limit is counted under and its bound. Concurrency is counted from the jobs
themselves (RUNNING under the key), so a worker that dies mid-stage holds its
slot until its lease is reaped and never leaks it; rate limits count starts
recorded within the sliding window. A job whose limit is full stays PENDING,
holding no worker slot, and is leased when the limit has room again.

Keys are plain strings: `concurrency:<workflow>:<stage>[:<value>]` (with `per`,
the JSON of the value at the path in the run's input) and
`rate:<workflow>:<stage>` or `rate:<shared name>` (shared across stages and
workflows). A value too long for the key column is replaced by its digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from wfc.plan import PlanStage
from wfc.runtime.job_records import JobLimits

KEY_LENGTH = 400
"""The width of the key columns (`jobs.concurrency_key`, `limit_locks.key`)."""


def stage_limits(workflow_id: str, stage: PlanStage, run_input: Any) -> JobLimits | None:
    """The limits a job of `stage` in a run with `run_input` is under (None: unlimited)."""
    concurrency, rate = stage.concurrency, stage.rate
    if concurrency is None and rate is None:
        return None
    limits = JobLimits()
    if concurrency is not None:
        key = f"concurrency:{workflow_id}:{stage.id}"
        if concurrency.per:
            key += ":" + _value_text(_at_path(run_input, concurrency.per[1:]))
        limits = JobLimits(concurrency_key=_fitted(key), concurrency_max=concurrency.max)
    if rate is not None:
        name = rate.shared if rate.shared is not None else f"{workflow_id}:{stage.id}"
        return JobLimits(
            concurrency_key=limits.concurrency_key,
            concurrency_max=limits.concurrency_max,
            rate_key=_fitted(f"rate:{name}"),
            rate_max=rate.max,
            rate_window_ms=rate.window_ms,
        )
    return limits


def limit_columns(limits: JobLimits | None) -> dict[str, Any]:
    """The job columns (and `JobRecord` fields) that hold `limits`."""
    if limits is None:
        limits = JobLimits()
    return {
        "concurrency_key": limits.concurrency_key,
        "concurrency_max": limits.concurrency_max,
        "rate_key": limits.rate_key,
        "rate_max": limits.rate_max,
        "rate_window_ms": limits.rate_window_ms,
    }


def with_overrides(limits: JobLimits, overrides: Mapping[str, int]) -> JobLimits:
    """`limits` with the bounds an operator set for their keys (`wfc limits set`) in place
    of the plan's."""
    concurrency = overrides.get(limits.concurrency_key or "", limits.concurrency_max)
    rate = overrides.get(limits.rate_key or "", limits.rate_max)
    return replace(limits, concurrency_max=concurrency, rate_max=rate)


def _at_path(value: Any, path: tuple[str, ...]) -> Any:
    """The value at `path` in `value` (None where a field is missing: such runs share
    one key, as the checker allows only optional fields to be absent)."""
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _value_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _fitted(key: str) -> str:
    """`key`, or its prefix and digest when it is wider than the key columns."""
    if len(key) <= KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{key[: KEY_LENGTH - len(digest) - 1]}#{digest}"


def describe_key(key: str) -> str:
    """A key as `wfc runs show` words it: `concurrency of invoice.classify for "acme"`."""
    kind, _, rest = key.partition(":")
    if kind == "rate":
        return f"rate limit {rest}"
    workflow, _, rest = rest.partition(":")
    stage, _, value = rest.partition(":")
    where = f"{workflow}.{stage}"
    return f"concurrency limit of {where}" + (f" for {value}" if value else "")
