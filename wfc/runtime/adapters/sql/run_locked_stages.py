"""SQL for a stage's write under its run's lock: the run's row locked (its version bumped)
and the stage written only while the run is RUNNING, the run's row always first, as every
two-row write of a run locks them. On PostgreSQL one statement (the run's UPDATE a CTE the
stage's write reads); on SQLite, whose BEGIN IMMEDIATE already holds the file's write
lock, two updates, or (`expect`) two updates checked against rows the caller holds."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.errors import ExpectationFailed, RecordNotFoundError
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.rows import (
    built_once,
    column_values,
    params_for,
    prefixed,
    to_record,
    to_values,
    update_versioned,
)
from wfc.runtime.adapters.sql.schema import runs, stages
from wfc.runtime.adapters.sql.stages import (
    fence_condition,
    fence_guard,
    fence_params,
    fence_shape,
    run_columns,
    run_record,
    update_stage_as_expected,
)
from wfc.runtime.copies import changed
from wfc.runtime.records import RunRecord, StageChanges, StageFence, StageRecord, Status


def _lock_and_update(updates: dict[str, Any], fence: StageFence | None, data: bool = True) -> Any:
    """PostgreSQL: the run's lock and the stage's write as one statement. The run's UPDATE
    is a data-modifying CTE, so it runs (and takes the row lock) whether or not the stage
    is written; the stage is written only if the locked run is RUNNING.

    The answer is a row whenever the run exists: the stage's columns (NULL when it was
    not written), the locked run's (`locked_*`), and, only when the stage was not
    written, whether its row exists (`wfc_stage_there`). So a refused write (a ghost)
    is told apart from a missing row without another statement, and its transaction can
    roll back at once, releasing the run's lock for the sibling outcomes waiting on it.
    The row's existence is read at the statement's snapshot: a rerun that deleted it
    while this statement waited for the run's lock reads as a refusal, which it is."""
    locked = (
        update(runs)
        .where(runs.c.id == bindparam("run_id"))
        .values(version=runs.c.version + 1, updated_at=bindparam("now"))
        .returning(*run_columns(data))
        .cte("locked")
    )
    fenced = [] if fence is None else [fence_condition(fence)]
    written = (
        update(stages)
        .where(
            stages.c.id == bindparam("record_id"),
            locked.c.status == Status.RUNNING.value,
            *fenced,
        )
        .values(
            {
                **params_for(updates, "u_"),
                "version": stages.c.version + 1,
                "updated_at": bindparam("now"),
            }
        )
        .returning(*stages.c)
        .cte("written")
    )
    there = exists().where(stages.c.id == bindparam("record_id"))
    return select(
        *written.c,
        *(column.label(f"locked_{column.name}") for column in locked.c),
        case((written.c.id.is_(None), there), else_=true()).label("wfc_stage_there"),
    ).select_from(locked.outerjoin(written, true()))


# SQLite: the run's lock of the reading path, which also advances the run's outbox counter
# by `events` (`persistence.LOCK_EVENTS`) and returns the row with `last_sequence`.
_LOCK_COUNTED = (
    update(runs)
    .where(runs.c.id == bindparam("run_id"))
    .values(
        version=runs.c.version + 1,
        updated_at=bindparam("now"),
        last_sequence=runs.c.last_sequence + bindparam("events"),
    )
    .returning(*runs.c)
)


async def lock_counted(
    conn: AsyncConnection, run_id: str, now: datetime, events: int
) -> Mapping[str, Any] | None:
    """SQLite: the run's lock (its version bumped, whatever its status), its outbox counter
    advanced by `events`: the run's row after, None when there is no such run."""
    return await direct.first(conn, _LOCK_COUNTED, {"run_id": run_id, "now": now, "events": events})


async def stage_under_lock(
    conn: AsyncConnection,
    run_row: Mapping[str, Any],
    record_id: str,
    changes: StageChanges,
    now: datetime,
    fence: StageFence | None,
) -> tuple[RunRecord, StageRecord] | None:
    """SQLite: the stage written after its run's lock (`run_row`, as the lock left it), if
    the run is RUNNING and the stage passes `fence`."""
    if run_row["status"] != Status.RUNNING.value:
        return None
    run = to_record(RunRecord, run_row)
    row = await update_versioned(
        conn, stages, "WorkflowStage", record_id, dict(changes), now, None, fence_guard(fence)
    )
    return None if row is None else (run, to_record(StageRecord, row))


async def lock_run_and_update_stage(
    conn: AsyncConnection,
    run_id: str,
    record_id: str,
    changes: StageChanges,
    now: datetime,
    fence: StageFence | None = None,
    data: bool = True,
    expect: tuple[RunRecord, StageRecord] | None = None,
) -> tuple[RunRecord, StageRecord] | None:
    """Lock the run and write the stage if the run is RUNNING and the stage passes `fence`:
    one statement on PostgreSQL, the two updates on SQLite (whose BEGIN IMMEDIATE holds
    the write lock already). `data=False`: the run comes back without `RUN_DATA`.
    `expect` (SQLite): see `_lock_as_expected`."""
    if conn.dialect.name != "postgresql":
        if expect is not None and expectable(run_id, record_id, fence, expect):
            return await _lock_as_expected(conn, changes, now, expect)
        try:
            run_row = await update_versioned(conn, runs, "WorkflowRun", run_id, {}, now, None)
        except RecordNotFoundError:
            return None
        if run_row is None or run_row["status"] != Status.RUNNING.value:
            return None
        run = to_record(RunRecord, run_row)
        guard = fence_guard(fence)
        row = await update_versioned(
            conn, stages, "WorkflowStage", record_id, dict(changes), now, None, guard
        )
        return None if row is None else (run, to_record(StageRecord, row))
    updates = column_values(dict(changes))
    statement = built_once(
        ("lock_run_and_update_stage", fence_shape(fence), data, *updates),
        lambda: _lock_and_update(updates, fence, data),
    )
    params = prefixed(updates, "u_") | {"run_id": run_id, "record_id": record_id, "now": now}
    row = await direct.first(conn, statement, params | fence_params(fence))
    if row is None:  # no such run
        return None
    if row["id"] is not None:
        return run_record(row, "locked_", data), to_record(StageRecord, row)
    if row["locked_status"] == Status.RUNNING.value and not row["wfc_stage_there"]:
        raise RecordNotFoundError("WorkflowStage", record_id)
    return None  # the run stopped, or the stage failed the fence: nothing sent after it


def _lock_and_start(values: tuple[str, ...], updates: tuple[str, ...], fence: StageFence) -> Any:
    """PostgreSQL: the run's lock and a stage's start as one statement. The stage's upsert
    selects from the run's UPDATE, so the run's row is locked before the stage's (the
    order `run.cancel` takes them in) and the stage is written only if the locked run is
    RUNNING; the run comes back whatever happened to the stage."""
    locked = (
        update(runs)
        .where(runs.c.id == bindparam("run_id"))
        .values(version=runs.c.version + 1, updated_at=bindparam("now"))
        .returning(*runs.c)
        .cte("locked")
    )
    new_row = (
        select(*(bindparam(f"v_{name}", type_=stages.c[name].type) for name in values))
        .select_from(locked)
        .where(locked.c.status == Status.RUNNING.value)
    )
    started = (
        postgresql.insert(stages)
        .from_select(list(values), new_row)
        .on_conflict_do_update(
            index_elements=["run_id", "stage_id"],
            set_={
                **params_for(updates, "u_"),
                "version": stages.c.version + 1,
                "updated_at": bindparam("now"),
            },
            where=fence_condition(fence),
        )
        .returning(*stages.c)
        .cte("started")
    )
    return select(
        *started.c, *(column.label(f"locked_{column.name}") for column in locked.c)
    ).select_from(locked.outerjoin(started, true()))


async def lock_run_and_start_stage(
    conn: AsyncConnection,
    run_id: str,
    create: StageRecord,
    changes: StageChanges,
    now: datetime,
    fence: StageFence,
) -> tuple[RunRecord, StageRecord | None]:
    """PostgreSQL: `Persistence.lock_run_and_start_stage` in one round trip, where the lock
    and the start were two, the run's row locked from the first to the commit: on a
    fan-out with 4 workers the siblings that other workers dequeue contend for that row."""
    values, updates = to_values(create), column_values(dict(changes))
    shape = ("lock_run_and_start_stage", fence_shape(fence), tuple(values), *updates)
    statement = built_once(shape, lambda: _lock_and_start(tuple(values), tuple(updates), fence))
    params = prefixed(values, "v_") | prefixed(updates, "u_") | {"run_id": run_id, "now": now}
    row = await direct.first(conn, statement, params | fence_params(fence))
    if row is None:
        raise RecordNotFoundError("WorkflowRun", run_id)
    run = run_record(row, "locked_", True)
    return run, (None if row["id"] is None else to_record(StageRecord, row))


def expectable(
    run_id: str, record_id: str, fence: StageFence | None, expect: tuple[RunRecord, StageRecord]
) -> bool:
    run, row = expect
    return (
        run.id == run_id
        and row.id == record_id
        and run.status is Status.RUNNING
        and (fence is None or fence.holds(row))
    )


_LOCK_AT_VERSION = (
    update(runs)
    .where(
        runs.c.id == bindparam("run_id"),
        runs.c.version == bindparam("version"),
        runs.c.status == Status.RUNNING.value,
    )
    .values(version=runs.c.version + 1, updated_at=bindparam("now"))
)


async def _lock_as_expected(
    conn: AsyncConnection,
    changes: StageChanges,
    now: datetime,
    expect: tuple[RunRecord, StageRecord],
) -> tuple[RunRecord, StageRecord]:
    """SQLite: the lock and the write, answered from `expect` (`Persistence.
    lock_run_and_update_stage`) — the run one version on, the row with `changes` — as
    PostgreSQL's predicted transaction answers, and checked at once rather than at the
    commit: each update changes its row only at the version expected (the run RUNNING),
    else `ExpectationFailed`, and the caller's transaction, rolled back, runs again
    reading. Both rows were returned and converted whole before (the run's JSON input
    and config among them), for values the caller already held: a fifth of a stage's
    Python on this path. BEGIN IMMEDIATE holds the file's write lock: nothing changes
    between the check and the commit."""
    run, row = expect
    params = {"run_id": run.id, "version": run.version, "now": now}
    if await direct.execute(conn, _LOCK_AT_VERSION, params) != 1:
        raise ExpectationFailed("the run is not at the version expected, or not RUNNING")
    return (
        changed(run, {"version": run.version + 1, "updated_at": now}),
        await update_stage_as_expected(conn, changes, now, row),
    )
