"""SQL for stage rows: upsert, versioned update and reads (the suspended-poll query is
`suspended_rows`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.drivers import dialect_name
from wfc.runtime.adapters.sql.rows import (
    Guard,
    built_once,
    column_values,
    params_for,
    prefixed,
    to_record,
    to_values,
    update_versioned,
    upsert_insert,
)
from wfc.runtime.adapters.sql.schema import runs, stages, status_is
from wfc.runtime.copies import changed
from wfc.runtime.records import ACTIVE, RunRecord, StageChanges, StageFence, StageRecord, Status


def fence_shape(fence: StageFence | None) -> tuple[Any, ...]:
    """What tells apart the statements built once for fences: the statuses and which of
    the other conditions are set (their values are parameters)."""
    if fence is None:
        return ()
    return (
        tuple(sorted(fence.statuses)),
        fence.attempt is not None,
        fence.before_attempt is not None,
        fence.version is not None,
        fence.generation is not None,
        fence.stage_running,
    )


def fence_condition(fence: StageFence, table: Table = stages) -> ColumnElement[bool]:
    """The fence as a condition on a `stages` (or `items`) row, with parameters named `f_…`."""
    c = table.c
    statuses = [c.status == bindparam(f"f_status_{n}") for n in range(len(fence.statuses))]
    conditions: list[ColumnElement[bool]] = [or_(*statuses)]
    if fence.attempt is not None:
        conditions.append(c.attempt == bindparam("f_attempt"))
    if fence.before_attempt is not None:
        conditions.append(c.attempt < bindparam("f_before_attempt"))
    if fence.version is not None:
        conditions.append(c.version == bindparam("f_version"))
    if fence.generation is None:
        return and_(*conditions)
    earlier = c.generation < bindparam("f_generation")
    return or_(earlier, and_(c.generation == bindparam("f_generation"), *conditions))


def fence_params(fence: StageFence | None) -> dict[str, Any]:
    if fence is None:
        return {}
    params: dict[str, Any] = {
        f"f_status_{n}": status.value for n, status in enumerate(sorted(fence.statuses))
    }
    params |= {
        name: value
        for name, value in (
            ("f_attempt", fence.attempt),
            ("f_before_attempt", fence.before_attempt),
            ("f_version", fence.version),
            ("f_generation", fence.generation),
        )
        if value is not None
    }
    return params


async def upsert_stage(
    conn: AsyncConnection,
    create: StageRecord,
    changes: StageChanges,
    now: datetime,
    fence: StageFence | None = None,
) -> StageRecord | None:
    """One statement: insert `create`, or apply `changes` to the row already there if it
    passes `fence` (None when it does not).

    On SQLite, without a fence (a group opened: the row is new but after a crash), a row
    inserted is `create` itself, as the memory store returns it: the insert returns its
    id alone, and only a row already there is read back, by the upsert. Reading back
    and converting the whole new row cost as much Python as two plain statements, on
    every group opened; the second statement the rare path costs is a function call in
    SQLite, not a round trip. (A fenced upsert, a stage's start, expects its row.)"""
    values, updates = to_values(create), column_values(dict(changes))
    if fence is None and dialect_name(conn) == "sqlite":
        if await direct.insert_rows(conn, _insert_new_stage(conn), [values]):
            return create

    def build() -> Any:
        statement = upsert_insert(conn, stages).values(params_for(values, "v_"))
        return statement.on_conflict_do_update(
            index_elements=["run_id", "stage_id"],
            set_={
                **params_for(updates, "u_"),
                "version": stages.c.version + 1,
                "updated_at": bindparam("now"),
            },
            where=None if fence is None else fence_condition(fence),
        ).returning(*stages.c)

    shape = ("upsert_stage", dialect_name(conn), fence_shape(fence), *updates)
    statement = built_once(shape, build)
    params = prefixed(values, "v_") | prefixed(updates, "u_") | {"now": now}
    row = await direct.first(conn, statement, params | fence_params(fence))
    if row is None:
        assert fence is not None, "an upsert without a fence returns its row"
        return None
    return to_record(StageRecord, row)


def _insert_new_stage(conn: AsyncConnection) -> Any:
    """SQLite: insert a stage row unless its (run, stage) is there; its id if inserted.
    Its VALUES are the row's (`direct.insert_rows`: the columns left NULL are left out)."""
    return built_once(
        ("insert_new_stage", dialect_name(conn)),
        lambda: (
            upsert_insert(conn, stages)
            .on_conflict_do_nothing(index_elements=["run_id", "stage_id"])
            .returning(stages.c.id)
        ),
    )


_INSERT_STAGE = insert(stages)


async def insert_stage(conn: AsyncConnection, create: StageRecord) -> None:
    """Insert a row known to be new (held in a transaction): one already there is an error."""
    await direct.defer_rows(conn, _INSERT_STAGE, [to_values(create)])


async def update_stage(
    conn: AsyncConnection,
    record_id: str,
    changes: StageChanges,
    now: datetime,
    expected_version: int | None,
) -> StageRecord:
    row = await update_versioned(
        conn, stages, "WorkflowStage", record_id, dict(changes), now, expected_version
    )
    assert row is not None, "an update without a guard changes its row or raises"
    return to_record(StageRecord, row)


def _run_is_running(lock: bool) -> ColumnElement[bool]:
    """The run `:g_run_id` is RUNNING; with `lock` (PostgreSQL), its row locked as it is
    found (FOR NO KEY UPDATE, the lock an UPDATE of the run takes).

    The lock is what orders a stage write guarded this way after the run's row: the
    condition is a subplan of the stage's UPDATE, evaluated on the stage row scanned
    before the UPDATE locks that row, so the run's row is locked first — the order a
    stage's start, `lock_run_and_update_stage` and `run.cancel` take them in. Read
    without the lock, an outcome locked its stage, then its run (with its events,
    `outbox.append`), and deadlocked with a cancel that held the run and wanted the stage.
    The lock costs no statement; a run not RUNNING is neither locked nor written. The
    condition does not name the stage, so it runs once, before any stage row is read: a
    RUNNING run's row is locked even when the stage's own fence then fails (a ghost's
    write), and stays locked, written by no one, to the end of that transaction: which
    is why the refused write is its last statement (`rows.update_versioned` says why in
    it) and the kernel rolls back before it asks why (`stage_outcome.Unwritten`)."""
    running = select(runs.c.id).where(
        runs.c.id == bindparam("g_run_id"), runs.c.status == Status.RUNNING.value
    )
    if lock:
        running = running.with_for_update(key_share=True)
    return running.exists()


def fence_guard(
    fence: StageFence | None, run_id: str | None = None, lock_run: bool = False
) -> Guard | None:
    """The guard of a fenced stage write: the fence, and the run RUNNING when `run_id`
    (its row locked when `lock_run`: `_run_is_running`)."""
    if fence is None and run_id is None:
        return None
    params = fence_params(fence)

    def condition() -> ColumnElement[bool]:
        parts = [] if run_id is None else [_run_is_running(lock_run)]
        return and_(*parts, *([] if fence is None else [fence_condition(fence)]))

    if run_id is not None:
        params["g_run_id"] = run_id
    locking = run_id is not None and lock_run
    return Guard(f"fenced:{run_id is not None}:{locking}:{fence_shape(fence)}", condition, params)


async def update_stage_while_running(
    conn: AsyncConnection,
    record_id: str,
    run_id: str,
    changes: StageChanges,
    now: datetime,
    fence: StageFence | None = None,
) -> StageRecord | None:
    """The guarded write of a stage's outcome: one statement, no separate run read. On
    PostgreSQL the statement locks the run's row before the stage's (`_run_is_running`)."""
    guard = fence_guard(fence, run_id, lock_run=dialect_name(conn) == "postgresql")
    row = await update_versioned(
        conn, stages, "WorkflowStage", record_id, dict(changes), now, None, guard
    )
    return None if row is None else to_record(StageRecord, row)


RUN_DATA = ("input", "config", "output")
"""The run's columns that can be large (the input a map's list may be in): left unread by
`data=False`, which reads the run's state alone."""


def run_columns(data: bool) -> list[Any]:
    """The `runs` columns read: all, or all but `RUN_DATA`."""
    return [column for column in runs.c if data or column.name not in RUN_DATA]


def run_record(row: Mapping[str, Any], prefix: str, data: bool) -> RunRecord:
    """The run of a row that has its columns, or all but `RUN_DATA` (which then read as
    empty: `{}`, `{}`, None)."""
    if data:
        return to_record(RunRecord, row, prefix)
    unread: dict[str, Any] = {f"{prefix}input": {}, f"{prefix}config": {}, f"{prefix}output": None}
    return to_record(RunRecord, {**row, **unread}, prefix)


async def update_stage_as_expected(
    conn: AsyncConnection, changes: StageChanges, now: datetime, row: StageRecord
) -> StageRecord:
    """Write `changes` to the stage `row` if it is still at the version read (else
    `ExpectationFailed`): the row as written, answered from `row` without reading it.

    A column changed to None is set to NULL in the statement itself, not bound: `sqlite3`
    binds None through its adapter lookup (about 3,200 instructions a value, against
    none for text and integers), and a stage's outcome clears three columns
    (`suspended_state`, `next_poll_at`, `error`). The statement is built once per set of
    columns bound and columns cleared, and the parameters are made in one pass over the
    changes."""
    params: dict[str, Any] = {"record_id": row.id, "version": row.version, "now": now}
    bound: list[str] = []
    cleared: list[str] = []
    for column, value in changes.items():
        if value is None:
            cleared.append(column)
        else:
            bound.append(column)
            # (`_value_`: `value` without its property, as `rows.column_values` reads it.)
            params["u_" + column] = value._value_ if value.__class__ is Status else value

    def build() -> Any:
        return (
            update(stages)
            .where(stages.c.id == bindparam("record_id"), stages.c.version == bindparam("version"))
            .values(
                {
                    **params_for(bound, "u_"),
                    **dict.fromkeys(cleared, null()),
                    "version": stages.c.version + 1,
                    "updated_at": bindparam("now"),
                }
            )
        )

    statement = built_once(("stage_at_version", tuple(bound), tuple(cleared)), build)
    if await direct.execute(conn, statement, params) != 1:
        raise ExpectationFailed("the stage row is not at the version expected")
    return changed(row, {**changes, "version": row.version + 1, "updated_at": now})


async def get_stage(conn: AsyncConnection, run_id: str, stage_id: str) -> StageRecord | None:
    statement = select(stages).where(stages.c.run_id == run_id, stages.c.stage_id == stage_id)
    row = (await conn.execute(statement)).first()
    return None if row is None else to_record(StageRecord, row)


_STAGES_OF_RUN = (
    select(stages)
    .where(stages.c.run_id == bindparam("run_id"))
    .order_by(stages.c.execution_group, stages.c.stage_number)
)


async def stages_of_run(conn: AsyncConnection, run_id: str) -> list[StageRecord]:
    rows = await direct.fetch(conn, _STAGES_OF_RUN, {"run_id": run_id})
    return [to_record(StageRecord, row) for row in rows]


def _run_with_stages(data: bool, for_stage: bool) -> Any:
    """The run's columns (all, or all but `RUN_DATA`) and its stages' side by side, one row
    per stage (one row of NULL stage columns when it has none), labelled `runs_<column>`
    and `stages_<column>`. `for_stage`: only the stages of groups before `:group` and the
    one `:stage_id` (in the join's condition, so the run's row comes back without them)."""
    joined = stages.c.run_id == runs.c.id
    if for_stage:
        context = or_(
            stages.c.execution_group < bindparam("group"),
            stages.c.stage_id == bindparam("stage_id"),
        )
        joined = and_(joined, context)
    return (
        select(*run_columns(data), stages)
        .select_from(runs.outerjoin(stages, joined))
        .where(runs.c.id == bindparam("run_id"))
        .order_by(stages.c.execution_group, stages.c.stage_number)
        .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    )


_RUN_WITH_STAGES = {
    (data, for_stage): _run_with_stages(data, for_stage)
    for data in (True, False)
    for for_stage in (True, False)
}


async def run_with_stages(
    conn: AsyncConnection,
    run_id: str,
    data: bool = True,
    for_stage: tuple[str, int] | None = None,
) -> tuple[RunRecord, list[StageRecord]] | None:
    params: dict[str, Any] = {"run_id": run_id}
    if for_stage is not None:
        params |= {"stage_id": for_stage[0], "group": for_stage[1]}
    statement = _RUN_WITH_STAGES[data, for_stage is not None]
    rows = await direct.fetch(conn, statement, params)
    if not rows:
        return None
    run = run_record(rows[0], "runs_", data)
    found = [to_record(StageRecord, row, "stages_") for row in rows if row["stages_id"]]
    return run, found


_ACTIVE_STAGES = (
    select(func.count().label("active"))
    .select_from(stages)
    .where(
        stages.c.run_id == bindparam("run_id"),
        # An OR of the statuses, not an `IN` list: SQLAlchemy renders an expanding `IN`
        # per call, so the statement could not be compiled once and ran through its whole
        # execution layer (four times a `fan` run).
        or_(*(status_is(stages, status.value) for status in sorted(ACTIVE))),
    )
)


async def count_active_stages(conn: AsyncConnection, run_id: str) -> int:
    """One row whatever the group's width: an aggregate over the run's rows in the index
    on (run_id, stage_id), none of them sent."""
    row = await direct.first(conn, _ACTIVE_STAGES, {"run_id": run_id})
    assert row is not None, "an aggregate returns its row"
    return int(row["active"])


async def delete_stages(conn: AsyncConnection, record_ids: Sequence[str]) -> None:
    if record_ids:
        await conn.execute(delete(stages).where(stages.c.id.in_(list(record_ids))))
