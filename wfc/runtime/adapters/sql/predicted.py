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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import combine, direct
from wfc.runtime.adapters.sql.outbox import events_json
from wfc.runtime.adapters.sql.rows import built_once, column_values, params_for, prefixed
from wfc.runtime.adapters.sql.schema import runs, stages
from wfc.runtime.records import (
    NewOutboxEvent,
    OutboxRecord,
    RunChanges,
    RunRecord,
    StageChanges,
    StageRecord,
    Status,
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
            run=dataclasses.replace(run, version=run.version + 1, updated_at=now),
            read_version=run.version,
            stage=dataclasses.replace(row, **changes, version=row.version + 1, updated_at=now),
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
        self.run = dataclasses.replace(
            self.run, **changes, version=self.run.version + 1, updated_at=now
        )
        return self.run

    def append(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        """Events of the locked run, numbered by the statement (after the run's counter,
        which only the statement reads): the records carry sequence 0 until then."""
        if any(event.run_id != self.run.id for event in events):
            raise ExpectationFailed("events of a run the lock does not cover")
        self.events.extend(events)
        return [event.numbered(0) for event in events]


def _head(run_columns: tuple[str, ...], stage_columns: tuple[str, ...]) -> Any:
    locked = (
        update(runs)
        .where(
            runs.c.id == bindparam("run_id"),
            runs.c.version == bindparam("read_version"),
            # Implied by the version (every write bumps it), stated for a row changed by hand.
            runs.c.status == Status.RUNNING.value,
        )
        .values(
            {
                **params_for(run_columns, "r_"),
                "version": runs.c.version + bindparam("bumps"),
                "last_sequence": runs.c.last_sequence + bindparam("event_count"),
                "updated_at": bindparam("now"),
            }
        )
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
    return select(literal_column("1")).add_cte(locked).add_cte(stage)  # (no parameter)


# The events, numbered after the counter `wfc_locked` advanced by their number.
_EVENTS = text(
    """
    WITH wfc_events AS (
        INSERT INTO outbox (id, run_id, sequence, event_type, payload, causation_id, occurred_at)
        SELECT e.id, wfc_locked.id, wfc_locked.last_sequence - :count + e.ord, e.event_type,
               e.payload, e.causation_id, e.occurred_at
        FROM wfc_locked, jsonb_to_recordset(CAST(:events AS jsonb)) AS e(
            id text, ord int, event_type text, payload jsonb, causation_id text,
            occurred_at timestamptz
        )
    )
    SELECT 1
    """
)


def statement(
    conn: AsyncConnection,
    prediction: Prediction,
    held: list[tuple[combine.Part, list[Any]]],
    expected: list[int],
) -> tuple[str, list[Any]]:
    """The predicting transaction as one statement, and its arguments (`direct.send_predicted`)."""
    run_columns, stage_columns = tuple(prediction.run_changes), tuple(prediction.stage_changes)
    head = built_once(
        ("predicted_head", run_columns, stage_columns), lambda: _head(run_columns, stage_columns)
    )
    params = (
        prefixed(prediction.run_changes, "r_")
        | prefixed(prediction.stage_changes, "u_")
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
    head_sql, args = direct.render(conn, head, params)
    pieces: list[tuple[combine.Part | None, int]] = [(None, len(args))]
    for part, part_args in held:
        pieces.append((part, len(part_args)))
        args += part_args
    if prediction.events:
        events = {"count": len(prediction.events), "events": events_json(prediction.events)}
        events_sql, events_args = direct.render(conn, _EVENTS, events)
        args += events_args
    # The text depends only on the pieces' shapes: joined once per shape (joining shifts
    # every parameter of every piece, which costs more than the round trip it saves).
    key = (head_sql, tuple(pieces), tuple(expected), bool(prediction.events))
    sql = _JOINED.get(key)
    if sql is None:
        sql = _join(head_sql, pieces, expected, events_sql if prediction.events else None)
        if len(_JOINED) < _MAX_JOINED:
            _JOINED[key] = sql
    return sql, args


_JOINED: dict[tuple[Any, ...], str] = {}
_MAX_JOINED = 512  # a handful of shapes in practice: one per kind of transition


def _join(
    head_sql: str,
    pieces: list[tuple[combine.Part | None, int]],
    expected: list[int],
    events_sql: str | None,
) -> str:
    """The statement's text: the head's CTEs, each held write as a CTE, the events', and
    the division that checks the rows they changed; parameters numbered in that order."""
    ctes = _own_ctes(head_sql, at=0)
    counted = ["wfc_locked", "wfc_stage"]
    at = pieces[0][1]
    for number, (part, count) in enumerate(pieces[1:]):
        assert part is not None
        name = f"wfc_part_{number}"
        ctes += [combine.shift(cte, at) for cte in part.ctes]
        ctes.append(f"{name} AS ({combine.shift(part.body, at)})")
        at += count
        if number in expected:
            counted.append(name)
    if events_sql is not None:
        ctes += _own_ctes(events_sql, at=at)
    rows = " * ".join(f"(SELECT count(*) FROM {name})" for name in counted)
    return f"WITH {', '.join(ctes)} SELECT 1 / ({rows}) AS predicted"


def _own_ctes(sql: str, *, at: int) -> list[str]:
    """The CTEs of one of this module's statements, numbered from parameter `at` on."""
    part = combine.split(sql)
    assert part is not None, "this module's statements are data statements"
    return [combine.shift(cte, at) for cte in part.ctes]
