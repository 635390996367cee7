"""A completed item handing its slot on without the run's lock: one statement on PostgreSQL,
one transaction of the same writes on SQLite.

An item that is not the last of its pass used to be recorded by a transaction
of five round trips (BEGIN, the run's lock with the stage's row, the item's
row, the counters with the job's completion and the next item's job, COMMIT),
and since every item of a run locked the run's row, four workers committed the
items of one run one at a time. `hand_on` sends it as one statement that locks,
in this order, the stage's row, the item's row and the item's job — the order
`run.cancel` takes them in after the run's row, so the two cannot deadlock:

    WITH wfc_stage AS (UPDATE stages SET items_done + 1, items_next + 1 …
                       WHERE id = … AND status = 'RUNNING' AND generation = …
                         AND a first pass AND a next item to queue
                         AND the run is RUNNING (read, not locked)
                       RETURNING items_next - 1 AS next_index),
         wfc_item AS (UPDATE items SET <COMPLETED, output> FROM wfc_stage
                      WHERE id = … AND status = 'RUNNING' AND attempt = …),
         wfc_done AS (UPDATE jobs SET COMPLETED FROM wfc_item WHERE id = … AND attempt = …),
         wfc_next AS (INSERT INTO jobs … SELECT …, jsonb_set(payload, '{item}', next_index)
                      FROM wfc_stage, wfc_done)
    SELECT next_index, 1 / (<rows of wfc_item> * <rows of wfc_done> * <rows of wfc_next>)
    FROM wfc_stage

The stage's row is the fence a cancel, a failure of the stage or a rerun moves
(each writes it, after the run's row); the item's row is the delivery's fence;
the job's attempt is its lease's. When the stage's conditions do not hold the
statement returns no row and writes nothing; when the item or the job moved on,
the division fails it whole. Either way the caller records the item the long
way, under the run's lock, which also covers the last item (its gather) and
the ones that report progress (their events number after the run's counter).

SQLite has no data-modifying CTEs: `hand_on_in_transaction` sends the same four
writes, with the same conditions, one by one in a transaction (BEGIN IMMEDIATE:
the database's write lock orders it with every other writer), and rolls back
when one of them changes no row. Six statements, run inline on the event loop's
thread (`sqlite_thread`), where the long way sent nine: a handed item on SQLite
is its start and this transaction, and its next item starts warm as on
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import bindparam, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.jobs import SqlJobTransport
from wfc.runtime.adapters.sql.schema import Json, UtcDateTime
from wfc.runtime.adapters.sql.schema import jobs as jobs_table
from wfc.runtime.handoff import JobTaker, handed_specs
from wfc.runtime.job_records import ItemHandOn
from wfc.runtime.ports import JobTransport
from wfc.runtime.records import Status

_JOB_COLUMNS = (
    ("id", "text"),
    ("run_id", "text"),
    ("workflow_id", "text"),
    ("stage_id", "text"),
    ("status", "text"),
    ("priority", "integer"),
    ("attempt", "integer"),
    ("max_attempts", "integer"),
    ("payload", None),  # with the next item's index, below
    ("created_at", None),
    ("updated_at", None),
    ("run_at", None),
    ("worker_id", "text"),
    ("locked_at", None),
    ("started_at", None),
    ("plan_fingerprint", "text"),
    ("queue", "text"),
    ("concurrency_key", "text"),
    ("concurrency_max", "integer"),
    ("rate_key", "text"),
    ("rate_max", "integer"),
    ("rate_window_ms", "integer"),
)
_TIMES = ("created_at", "updated_at", "run_at", "locked_at", "started_at")


def _job_value(column: str, cast: str | None) -> str:
    if column == "payload":
        return "jsonb_set(CAST(:j_payload AS jsonb), '{item}', to_jsonb(wfc_stage.next_index))"
    if cast is None:
        return f"CAST(:j_{column} AS timestamptz)"
    return f"CAST(:j_{column} AS {cast})"


_RUNNING, _COMPLETED, _PENDING = Status.RUNNING.value, Status.COMPLETED.value, Status.PENDING.value
# The four writes, shared by both forms: PostgreSQL's statement joins them as CTEs,
# SQLite's transaction sends them one by one (it has no data-modifying CTEs).
_STAGE = f"""
    UPDATE stages
    SET items_done = items_done + 1, items_next = items_next + 1,
        version = version + 1, updated_at = :now
    WHERE id = :record_id AND status = '{_RUNNING}' AND generation = :generation
      AND items_queued = items_total AND items_next < items_queued
      AND EXISTS (SELECT 1 FROM runs WHERE runs.id = stages.run_id
                  AND runs.status = '{_RUNNING}')
    RETURNING items_next - 1 AS next_index"""
_ITEM_SET = f"""
    SET status = '{_COMPLETED}', completed_at = :now, duration_ms = :duration_ms,
        metrics = :metrics, output = :output, error = NULL,
        version = items.version + 1, updated_at = :now"""
_ITEM_WHERE = f"items.id = :item_id AND items.status = '{_RUNNING}' AND items.attempt = :attempt"
_JOB_SET = f"SET status = '{_COMPLETED}', completed_at = :now, updated_at = :now"
_JOB_WHERE = f"""jobs.id = :job_id AND jobs.attempt = :job_attempt
      AND (jobs.status = '{_RUNNING}' OR jobs.status = '{_PENDING}')"""

_SQL = f"""
WITH wfc_stage AS ({_STAGE}
),
wfc_item AS (
    UPDATE items {_ITEM_SET}
    FROM wfc_stage
    WHERE {_ITEM_WHERE}
    RETURNING items.id
),
wfc_done AS (
    UPDATE jobs {_JOB_SET}
    FROM wfc_item
    WHERE {_JOB_WHERE}
    RETURNING jobs.id
),
wfc_next AS (
    INSERT INTO jobs ({", ".join(column for column, _ in _JOB_COLUMNS)})
    SELECT {", ".join(_job_value(column, cast) for column, cast in _JOB_COLUMNS)}
    FROM wfc_stage, wfc_done
    RETURNING jobs.id
)
SELECT wfc_stage.next_index,
       1 / ((SELECT count(*) FROM wfc_item) * (SELECT count(*) FROM wfc_done)
            * (SELECT count(*) FROM wfc_next)) AS counted
FROM wfc_stage
"""
_HAND_ON = text(_SQL).bindparams(
    bindparam("now", type_=UtcDateTime),
    bindparam("metrics", type_=Json),
    bindparam("output", type_=Json),
    bindparam("j_payload", type_=Json),
    *(bindparam(f"j_{column}", type_=UtcDateTime) for column in _TIMES),
)
_NOW = bindparam("now", type_=UtcDateTime)
_COUNT_STAGE = text(_STAGE).bindparams(_NOW)
_COMPLETE_ITEM = text(f"UPDATE items {_ITEM_SET} WHERE {_ITEM_WHERE}").bindparams(
    _NOW, bindparam("metrics", type_=Json), bindparam("output", type_=Json)
)
_COMPLETE_JOB = text(f"UPDATE jobs {_JOB_SET} WHERE {_JOB_WHERE}").bindparams(_NOW)
_QUEUE_NEXT = insert(jobs_table)
_DIVISION_BY_ZERO = "22012"  # a fence the stage's conditions did not cover moved on


class _Refused(Exception):
    """A write of the SQLite form found its fence moved on: its transaction rolls back."""


def _params(hand_on: ItemHandOn) -> dict[str, Any]:
    return {
        "now": hand_on.now,
        "record_id": hand_on.record_id,
        "generation": hand_on.generation,
        "duration_ms": hand_on.duration_ms,
        "metrics": hand_on.metrics,
        "output": hand_on.output,
        "item_id": hand_on.item_id,
        "attempt": hand_on.attempt,
        "job_id": hand_on.job_id,
        "job_attempt": hand_on.job_attempt,
    }


def _next_job(hand_on: ItemHandOn, jobs: SqlJobTransport) -> tuple[dict[str, Any], JobTaker | None]:
    """The next item's job row (its index still to come) and the worker slot it is handed
    to, when it is (`handed_specs`)."""
    taker, handed = handed_specs([hand_on.next_job])
    row = jobs.new_row(hand_on.next_job_id, hand_on.next_job, hand_on.now, leased=bool(handed))
    return row, taker if handed else None


async def hand_on(conn: AsyncConnection, hand_on: ItemHandOn, jobs: JobTransport) -> int | None:
    """`Persistence.hand_on_item` on PostgreSQL in autocommit (None elsewhere)."""
    if not direct.on_driver(conn) or not isinstance(jobs, SqlJobTransport):
        return None
    row, taker = _next_job(hand_on, jobs)
    params = _params(hand_on) | {f"j_{column}": value for column, value in row.items()}
    try:
        found = await direct.first(conn, _HAND_ON, params)
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != _DIVISION_BY_ZERO:
            raise
        return None
    if found is None:
        return None
    index: int = found["next_index"]
    if taker is not None:
        jobs.handed(row | {"payload": {**row["payload"], "item": index}}, taker)
    return index


async def hand_on_in_transaction(
    transaction: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    hand_on: ItemHandOn,
    jobs: JobTransport,
) -> int | None:
    """`Persistence.hand_on_item` on SQLite: the same four writes, fenced alike, one by
    one in a `transaction()` (SQLite's write lock serialises it with every other writer,
    as PostgreSQL's row locks do the statement), rolled back when a fence moved on."""
    if not isinstance(jobs, SqlJobTransport):
        return None
    row, taker = _next_job(hand_on, jobs)
    params = _params(hand_on)
    try:
        async with transaction() as conn:
            found = await direct.first(conn, _COUNT_STAGE, params)
            if found is None:
                return None  # nothing written yet: the block commits nothing
            index: int = found["next_index"]
            if not await direct.execute(conn, _COMPLETE_ITEM, params):
                raise _Refused
            if not await direct.execute(conn, _COMPLETE_JOB, params):
                raise _Refused
            row["payload"] = {**row["payload"], "item": index}
            await direct.insert_rows(conn, _QUEUE_NEXT, [row])
    except _Refused:
        return None
    if taker is not None:
        jobs.handed(row, taker)
    return index
