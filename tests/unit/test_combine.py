"""`combine`: writes joined as data-modifying CTEs of one statement, as SQLAlchemy constructs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects import postgresql

from wfc.runtime.adapters.sql import combine
from wfc.runtime.adapters.sql.schema import blobs, jobs, runs, stages

_PG = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
_BLOB = insert(blobs).values(key=bindparam("key"), data=bindparam("data"))
_RENAME_JOB = update(jobs).where(jobs.c.id == bindparam("id")).values(stage_id=bindparam("to"))
_STAGE = insert(stages).values(id=bindparam("id"), run_id=bindparam("run_id"))
_RUN = select(runs.c.id).where(runs.c.id == bindparam("id"))
_COMPLETING = update(jobs).where(jobs.c.id == bindparam("done")).values(status="COMPLETED")
_JOB_HANDING_ON = insert(jobs).values(id=bindparam("id")).add_cte(_COMPLETING.cte("handing_on"))


def _part(statement: Any) -> combine.Part:
    part = combine.part_of(statement)
    assert part is not None
    return part


def _sql(statement: Any) -> tuple[str, list[str]]:
    compiled = statement.compile(dialect=_PG)
    return " ".join(compiled.string.split()), list(compiled.positiontup)


def test_a_part_knows_what_it_touches_and_writes() -> None:
    """A stage row's insert checks its run (a foreign key): it touches `runs` too."""
    stage = _part(_STAGE)
    assert stage.writes == {"stages"} and {"stages", "runs"} <= stage.tables
    handing_on = _part(_JOB_HANDING_ON)
    assert handing_on.writes == {"jobs"} and handing_on.ctes == {"handing_on"}


def test_only_write_constructs_whose_parameters_are_their_own_travel() -> None:
    assert combine.part_of(_RUN) is None  # a read: its answer is wanted
    assert combine.part_of(text("INSERT INTO blobs VALUES (:key, :data)")) is None
    assert combine.part_of(insert(blobs)) is None  # columns decided by the parameters
    expanding = update(jobs).where(jobs.c.id.in_(bindparam("ids", expanding=True)))
    assert combine.part_of(expanding.values(stage_id="x")) is None


def test_parts_joined_keep_their_parameters_apart_and_answer_as_the_carrier() -> None:
    """Two parts binding one name get a parameter each; the carrier's keep their names;
    a part's own CTE is hoisted to the top level, where PostgreSQL requires it."""
    statement = combine.joined([_part(_BLOB), _part(_JOB_HANDING_ON)], _RUN)
    sql, names = _sql(statement)
    assert sql.startswith("WITH wfc_part_0 AS (INSERT INTO blobs")
    assert "handing_on AS (UPDATE jobs" in sql and "wfc_part_1 AS (INSERT INTO jobs" in sql
    assert sql.endswith(f"SELECT runs.id FROM runs WHERE runs.id = ${len(names)}::VARCHAR")
    assert names == ["wfc_0_key", "wfc_0_data", "wfc_1_id", "param_1", "wfc_1_done", "id"]
    params = combine.bound([(_part(_BLOB), {"key": "k"}), (_part(_RENAME_JOB), {"id": "j"})])
    assert params == {"wfc_0_key": "k", "wfc_1_id": "j"}
    assert combine.joined([_part(_BLOB), _part(_JOB_HANDING_ON)], _RUN) is statement  # once


def test_parts_expected_to_change_a_row_are_counted() -> None:
    counted = insert(blobs).values(key=bindparam("key"), data=bindparam("data"))
    sql, _ = _sql(combine.joined([_part(counted.returning(blobs.c.key))], None, [0]))
    assert "(SELECT count(*) AS count_1 FROM wfc_part_0)" in sql
    assert _sql(combine.joined([_part(_BLOB)]))[0].endswith(") SELECT 1")


def test_parts_that_touch_one_table_are_never_joined() -> None:
    """The safety rule, where parts are joined: one snapshot, no set order."""
    with pytest.raises(combine.UnsafeJoin):
        combine.joined([_part(_RENAME_JOB), _part(_JOB_HANDING_ON)])
    with pytest.raises(combine.UnsafeJoin):  # the stage's foreign key reads the run
        combine.joined([_part(_STAGE)], _RUN)
    held = combine.Held()
    held.add(_part(_BLOB), {})
    assert not held.admits(_part(_BLOB)) and held.admits(_part(_STAGE))
    assert held.carried_by(select(blobs.c.key), {}) is None


def test_a_predicted_statement_may_insert_twice_into_one_table_and_nothing_else() -> None:
    """Inserts without ON CONFLICT only add rows (a row there already fails the statement),
    so a predicted statement takes a group's new stage rows side by side; an upsert or an
    update of a table an insert writes is still refused, as outside a prediction."""
    stage_upsert = postgresql.insert(stages).values(id=bindparam("id"))
    upsert = stage_upsert.on_conflict_do_nothing()
    rename_stage = update(stages).where(stages.c.id == bindparam("id")).values(stage_id="x")
    assert _part(_STAGE).adds_only and not _part(upsert).adds_only
    assert not _part(_JOB_HANDING_ON).adds_only  # a CTE of its own
    copy_stage = postgresql.insert(stages).from_select([stages.c.id], select(stages.c.id))
    assert not _part(copy_stage).adds_only  # reads its own table
    held = combine.Held(predicting=True)
    held.add(_part(_STAGE), {})
    assert held.admits_predicted(_part(_STAGE))
    assert not held.admits_predicted(_part(upsert))
    assert not held.admits_predicted(_part(rename_stage))
    combine.check_disjoint([_part(_STAGE), _part(_STAGE)], predicted=True)
    for other in (upsert, rename_stage):
        with pytest.raises(combine.UnsafeJoin):
            combine.check_disjoint([_part(_STAGE), _part(other)], predicted=True)
        with pytest.raises(combine.UnsafeJoin):
            combine.check_disjoint([_part(other), _part(_STAGE)], predicted=True)
    with pytest.raises(combine.UnsafeJoin):  # outside a prediction: the same table, refused
        combine.check_disjoint([_part(_STAGE), _part(_STAGE)])
    held.add(_part(rename_stage), {})  # (a caller that asked no admission) ends the rule
    assert not held.admits_predicted(_part(_STAGE))
