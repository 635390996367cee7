"""SQL for runs: insert, read, versioned update, claim, and the stuck-run query."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, exists, insert, literal_column, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.drivers import dialect_name
from wfc.runtime.adapters.sql.rows import (
    built_once,
    one_of,
    one_of_params,
    params_for,
    to_record,
    to_values,
    update_versioned,
)
from wfc.runtime.adapters.sql.schema import runs, stages, status_is
from wfc.runtime.records import RunChanges, RunClaim, RunRecord, Status

_INSERT_RUN = insert(runs)


async def create_run(conn: AsyncConnection, run: RunRecord, last_sequence: int = 0) -> None:
    """Insert the run (with the held writes, in a transaction: nothing is read back);
    `last_sequence`: the outbox events inserted with it (`outbox.append_to_new_run`)."""
    values = to_values(run)
    if last_sequence:  # else the column's default
        values["last_sequence"] = last_sequence
    await direct.defer_rows(conn, _INSERT_RUN, [values])


# Built once: the hottest read of every command (SQLAlchemy caches the compiled form, but
# building the statement object per call costs more than the round trip on a local server).
_GET_RUN = select(runs).where(runs.c.id == bindparam("run_id"))


async def get_run(conn: AsyncConnection, run_id: str) -> RunRecord | None:
    row = await direct.first(conn, _GET_RUN, {"run_id": run_id})
    return None if row is None else to_record(RunRecord, row)


async def update_run(
    conn: AsyncConnection,
    run_id: str,
    changes: RunChanges,
    now: datetime,
    expected_version: int | None,
) -> RunRecord:
    row = await update_versioned(
        conn, runs, "WorkflowRun", run_id, dict(changes), now, expected_version
    )
    assert row is not None, "an update without a guard changes its row or raises"
    return to_record(RunRecord, row)


async def children_of(conn: AsyncConnection, run_id: str) -> list[RunRecord]:
    """The runs started by stages of `run_id`, oldest first."""
    statement = (
        select(runs).where(runs.c.parent_run_id == run_id).order_by(runs.c.created_at, runs.c.id)
    )
    return [to_record(RunRecord, row) for row in await conn.execute(statement)]


_OTHER = runs.alias("other")


def held_run_lock(columns: tuple[str, ...], prefix: str, count: str) -> Any:
    """A run's lock written once with what its transaction changed in it: `columns` set from
    `prefix`-named parameters, the version moved on by `bumps` and the outbox counter by the
    parameter `count`, only at the version read (`read_version`) and while RUNNING. Both
    one-run-write paths send it: PostgreSQL's predicted outcome statement (`predicted`) and
    SQLite's held lock (`sqlite_run_lock`); no row back means the run moved since it was read."""
    return (
        update(runs)
        .where(
            runs.c.id == bindparam("run_id"),
            runs.c.version == bindparam("read_version"),
            # Implied by the version (every write bumps it), stated for a row changed by hand.
            runs.c.status == Status.RUNNING.value,
        )
        .values(
            {
                **params_for(columns, prefix),
                "version": runs.c.version + bindparam("bumps"),
                "updated_at": bindparam("now"),
                "last_sequence": runs.c.last_sequence + bindparam(count),
            }
        )
    )


def plan_among(column: ColumnElement[Any], count: int) -> ColumnElement[bool]:
    """`column` is one of `count` plan fingerprints bound as `plan_0` …"""
    return one_of(column, "plan", count)


def plan_params(plans: Sequence[str]) -> dict[str, str]:
    """The parameters `plan_among` binds."""
    return one_of_params("plan", plans)


def _claim(plans: int | None, *only: ColumnElement[bool]) -> Any:
    """The claim of the best PENDING run (of one of `plans` fingerprints, when counted, and
    that also meets `only`)."""
    served = [] if plans is None else [plan_among(runs.c.plan_fingerprint, plans)]
    other_served = [] if plans is None else [plan_among(_OTHER.c.plan_fingerprint, plans)]
    best = (
        select(runs.c.id)
        .where(status_is(runs, Status.PENDING.value), *served, *only)
        .order_by(runs.c.priority.desc(), runs.c.created_at, runs.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(runs)
        .where(runs.c.id == best, runs.c.status == Status.PENDING.value)
        .values(
            status=Status.RUNNING.value,
            started_at=bindparam("now"),
            version=runs.c.version + 1,
            updated_at=bindparam("now"),
            # The claim's own events, numbered ahead (`persistence.CLAIM_EVENTS`); 0 on PostgreSQL.
            last_sequence=runs.c.last_sequence + bindparam("events"),
        )
        .returning(
            *runs.c,
            exists()
            # Spelled out: SQLite's RETURNING drops the table name `runs.c.id` renders with.
            .where(
                status_is(_OTHER, Status.PENDING.value),
                _OTHER.c.id != literal_column("runs.id"),
                *other_served,
            )
            .label("others_pending"),
        )
    )


async def claim_next_pending_run(
    conn: AsyncConnection,
    now: datetime,
    run_id: str | None = None,
    plans: Sequence[str] | None = None,
) -> RunClaim | None:
    """One statement: pick the best PENDING run (skipping rows other claimers hold), start
    it, and say whether another run is PENDING (seen as of the statement's start, which
    still shows the claimed one PENDING: hence `id <>`). Built once per number of plans:
    every claim, and every wakeup that finds nothing, runs it."""
    claimed = await claim_counted(conn, now, run_id, plans, events=0)
    return None if claimed is None else claimed[0]


async def claim_counted(
    conn: AsyncConnection,
    now: datetime,
    run_id: str | None,
    plans: Sequence[str] | None,
    *,
    events: int,
) -> tuple[RunClaim, int] | None:
    """`claim_next_pending_run` that also advances the claimed run's outbox counter by
    `events`: the claim and the run's `last_sequence` after it."""
    if plans is not None and not plans:
        return None  # a claimer serving no plan takes nothing
    count = None if plans is None else len(plans)
    params: dict[str, Any] = {"now": now, "events": events, **plan_params(plans or ())}
    if run_id is None:
        statement = built_once(("claim", count), lambda: _claim(count))
    else:
        only = runs.c.id == bindparam("only_run_id")
        statement = built_once(("claim_one", count), lambda: _claim(count, only))
        params["only_run_id"] = run_id
    row = await direct.first(conn, statement, params)
    if row is None:
        return None
    claim = RunClaim(run=to_record(RunRecord, row), others_pending=bool(row["others_pending"]))
    return claim, int(row["last_sequence"])


async def runs_to_adopt(
    conn: AsyncConnection, workflow_ids: Sequence[str], plans: Sequence[str], limit: int
) -> list[RunRecord]:
    if not workflow_ids:
        return []
    statement = (
        select(runs)
        .where(
            runs.c.status.in_([Status.PENDING.value, Status.RUNNING.value]),
            runs.c.workflow_id.in_(list(workflow_ids)),
            runs.c.plan_fingerprint.not_in(list(plans)),
        )
        .order_by(runs.c.created_at, runs.c.id)
        .limit(limit)
    )
    return [to_record(RunRecord, row) for row in await conn.execute(statement)]


async def stuck_runs(conn: AsyncConnection, since: datetime) -> list[RunRecord]:
    recent_stage = exists().where(stages.c.run_id == runs.c.id, stages.c.updated_at > since)
    statement = (
        select(runs)
        .where(runs.c.status == Status.RUNNING.value, runs.c.updated_at <= since, ~recent_stage)
        .order_by(runs.c.updated_at)
    )
    return [to_record(RunRecord, row) for row in await conn.execute(statement)]


async def list_runs(
    conn: AsyncConnection,
    status: Status | None,
    workflow_id: str | None,
    limit: int,
    *,
    before: tuple[datetime, str] | None = None,
    id_prefix: str | None = None,
) -> list[RunRecord]:
    """Newest first along the (created_at, id) index: a keyset page reads only its rows."""
    statement = select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(runs.c.status == status.value)
    if workflow_id is not None:
        statement = statement.where(runs.c.workflow_id == workflow_id)
    if id_prefix is not None:
        statement = statement.where(runs.c.id.startswith(id_prefix, autoescape=True))
        after = _after_prefix(id_prefix)
        if await _ids_sort_bytewise(conn):  # then the matches are one range of the id index
            statement = statement.where(runs.c.id >= id_prefix)
            if after is not None:
                statement = statement.where(runs.c.id < after)
    if before is not None:
        created_at, run_id = before
        # `created_at <= t` alone bounds the index range; the OR settles ties on the id.
        statement = statement.where(
            runs.c.created_at <= created_at,
            or_(runs.c.created_at < created_at, runs.c.id < run_id),
        )
    return [to_record(RunRecord, row) for row in await conn.execute(statement)]


_BYTEWISE: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


async def _ids_sort_bytewise(conn: AsyncConnection) -> bool:
    """Whether the run ids sort byte by byte (asked once per engine): SQLite's BINARY does,
    and PostgreSQL's C collations do. Only then are the ids starting with a prefix one
    range of the primary key's index: a `LIKE 'prefix%'` alone reads every run (under a
    C.UTF-8 or a linguistic collation PostgreSQL cannot turn it into a range, and SQLite's
    LIKE ignores case), and a linguistic collation orders `ab-1` apart from `ab-`."""
    engine = conn.engine.sync_engine
    known = _BYTEWISE.get(engine)
    if known is None:
        if dialect_name(conn) == "sqlite":
            known = True
        else:
            collation = await conn.scalar(
                text("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            )
            known = str(collation).split(".")[0] in ("C", "POSIX")
        _BYTEWISE[engine] = known
    return known


def _after_prefix(prefix: str) -> str | None:
    """The least string, bytewise, above every string that starts with `prefix` (None when
    there is none): its last character that can be incremented, incremented."""
    for end in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[end]) + 1
        code = 0xE000 if 0xD800 <= code <= 0xDFFF else code  # no lone surrogates
        if code <= 0x10FFFF:
            return prefix[:end] + chr(code)
    return None
