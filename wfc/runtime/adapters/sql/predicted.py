"""A stage's outcome transaction as one statement on PostgreSQL: its reads predicted, then
checked by the statement that writes.

The transaction that records a stage's outcome and opens the next group (or
completes the run) used to read three times before its last write: the run's
lock, the next stage's upsert, the outbox counter — with BEGIN and COMMIT, five
round trips a stage. When the caller knows what those reads will say (the stage
was alone in its group and the run is at the version the stage started from:
`Persistence.lock_run_and_update_stage(expect=…)`), it takes that as the answer,
every write is held (`direct.predict`), and the transaction goes as one statement
that checks the prediction as it writes:

    WITH wfc_locked AS (UPDATE runs SET version = version + …, last_sequence = … + n, …
                        WHERE id = … AND version = <as read> AND status = 'RUNNING'
                        RETURNING id, last_sequence),
         wfc_stage AS (UPDATE stages SET <the outcome> FROM wfc_locked
                       WHERE stages.id = … AND stages.version = <as read> RETURNING …),
         <the held writes: output blob, next stage rows, jobs, idempotency key>,
         wfc_events AS (INSERT INTO outbox … numbered from wfc_locked.last_sequence)
    SELECT 1 / (<rows of wfc_locked> * <rows of wfc_stage> * <rows of writes that must
                 change one>)

If anything moved in between, a count is zero and the division fails the
statement, which then wrote nothing; a write that collides fails it too (the next
stage's row there already: its INSERT has no ON CONFLICT). Either way the commit
raises `ExpectationFailed` and the kernel does the transaction again, reading. No
BEGIN and no COMMIT: one statement is a transaction of its own.

The run's own writes in such a transaction (its totals, its completion, the
outbox counter) are folded into `wfc_locked`: one statement cannot update a row
twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, insert, select, update
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import CTE

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import combine
from wfc.runtime.adapters.sql.outbox import (
    EVENT_COLUMNS,
    event_id,
    events_json,
    events_recordset,
)
from wfc.runtime.adapters.sql.rows import built_once, column_values, params_for, prefixed
from wfc.runtime.adapters.sql.runs import held_run_lock
from wfc.runtime.adapters.sql.schema import outbox, runs, stages
from wfc.runtime.copies import changed
from wfc.runtime.records import (
    NewOutboxEvent,
    OutboxRecord,
    RunChanges,
    RunRecord,
    StageChanges,
    StageRecord,
)

# How the statement fails when a prediction did not hold: its division by a zero count, a
# next stage's row already there, a row it refers to gone (SQLSTATEs).
FAILED_PREDICTION = frozenset({"22012", "23505", "23503"})

# Written by the statement's own CTEs: a held write may not touch a run (it would update
# the locked row a second time).
RESERVED = frozenset({"runs"})


@dataclass(slots=True)
class Prediction:
    """What a predicting transaction takes as read, and the run's writes folded into its lock."""

    run: RunRecord  # as it will be once the statement has run
    read_version: int
    stage: StageRecord
    stage_version: int
    stage_changes: dict[str, Any]
    now: datetime
    run_changes: dict[str, Any] = field(default_factory=dict)
    bumps: int = 1
    events: list[NewOutboxEvent] = field(default_factory=list)

    @classmethod
    def of_lock(
        cls, run: RunRecord, row: StageRecord, changes: StageChanges, now: datetime
    ) -> Prediction:
        """The lock of `run` and the write of `changes` to `row`, both as last read."""
        return cls(
            run=changed(run, {"version": run.version + 1, "updated_at": now}),
            read_version=run.version,
            stage=changed(row, {**changes, "version": row.version + 1, "updated_at": now}),
            stage_version=row.version,
            stage_changes=column_values(dict(changes)),
            now=now,
        )

    def update_run(
        self, run_id: str, changes: RunChanges, expected_version: int | None, now: datetime
    ) -> RunRecord:
        """`Persistence.update_run` of the locked run, folded into its lock."""
        if run_id != self.run.id or expected_version not in (None, self.run.version):
            raise ExpectationFailed(f"an update of run {run_id} the lock does not cover")
        self.run_changes |= column_values(dict(changes))
        self.bumps += 1
        self.now = now
        self.run = changed(
            self.run, {**changes, "version": self.run.version + 1, "updated_at": now}
        )
        return self.run

    def append(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        """Events of the locked run, numbered by the statement (after the run's counter,
        which only the statement reads): the records carry sequence 0 until then."""
        if any(event.run_id != self.run.id for event in events):
            raise ExpectationFailed("events of a run the lock does not cover")
        self.events.extend(events)
        return [event.numbered(0) for event in events]


def _head(run_columns: tuple[str, ...], stage_columns: tuple[str, ...]) -> tuple[CTE, CTE]:
    """The run's lock with its folded writes, and the stage's outcome written under it."""
    locked = (
        held_run_lock(run_columns, "r_", "event_count")
        .returning(runs.c.id, runs.c.last_sequence)
        .cte("wfc_locked")
    )
    stage = (
        update(stages)
        .where(
            stages.c.id == bindparam("record_id"),
            stages.c.version == bindparam("stage_version"),
            stages.c.run_id == locked.c.id,
        )
        .values(
            {
                **params_for(stage_columns, "u_"),
                "version": stages.c.version + 1,
                "updated_at": bindparam("now"),
            }
        )
        .returning(stages.c.id)
        .cte("wfc_stage")
    )
    return locked, stage


def _events(locked: CTE) -> CTE:
    """The events (one JSON parameter, `outbox.events_json`), numbered after the counter
    `wfc_locked` advanced by their number."""
    event = events_recordset()
    sequence = locked.c.last_sequence - bindparam("count", type_=Integer) + event.c.ord
    numbered = select(
        event_id(locked.c.id, sequence),
        locked.c.id,
        sequence,
        event.c.event_type,
        event.c.payload,
        event.c.causation_id,
        event.c.occurred_at,
    ).select_from(locked, event)
    return insert(outbox).from_select(EVENT_COLUMNS, numbered).cte("wfc_events")


def _build(
    run_columns: tuple[str, ...],
    stage_columns: tuple[str, ...],
    parts: tuple[combine.Part, ...],
    expected: tuple[int, ...],
    with_events: bool,
) -> Executable:
    """The statement: the head's CTEs, each held write as a CTE (`combine.as_cte`), the
    events', and the division that checks the rows they changed. The held writes may
    not write a table another writes, nor the run (`RESERVED`): one statement cannot
    change a row twice."""
    combine.check_disjoint(parts, predicted=True)
    if any(RESERVED & part.writes for part in parts):
        raise combine.UnsafeJoin("a held write of the locked run in its predicted statement")
    locked, stage = _head(run_columns, stage_columns)
    ctes = [combine.as_cte(part, number) for number, part in enumerate(parts)]
    counted = [locked, stage, *(ctes[number] for number in expected)]
    events = [_events(locked)] if with_events else []
    answer = select(combine.rows_of(counted).label("predicted"))
    return answer.add_cte(locked, stage, *ctes, *events)


def statement(
    prediction: Prediction,
    held: list[tuple[combine.Part, Mapping[str, Any]]],
    expected: list[int],
) -> tuple[Executable, dict[str, Any]]:
    """The predicting transaction as one statement, and its parameters
    (`direct.send_predicted`). Built once per shape: the columns it changes, the held
    statements, which must change a row, whether there are events."""
    run_columns, stage_columns = tuple(prediction.run_changes), tuple(prediction.stage_changes)
    parts = tuple(part for part, _ in held)  # hashed by identity: a part is built once
    shape = (run_columns, stage_columns, parts, tuple(expected), bool(prediction.events))
    built = built_once(("predicted", *shape), lambda: _build(*shape))
    params = (
        prefixed(prediction.run_changes, "r_")
        | prefixed(prediction.stage_changes, "u_")
        | combine.bound(held)
        | {
            "run_id": prediction.run.id,
            "read_version": prediction.read_version,
            "bumps": prediction.bumps,
            "event_count": len(prediction.events),
            "now": prediction.now,
            "record_id": prediction.stage.id,
            "stage_version": prediction.stage_version,
        }
    )
    if prediction.events:
        params |= {"count": len(prediction.events), "events": events_json(prediction.events)}
    return built, params
