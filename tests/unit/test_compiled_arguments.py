"""`compiled.Compiled`'s argument functions, written out once per statement: the same
arguments, in the same order, converted the same way, as the plan they are made from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg

from wfc.runtime.adapters.sql import compiled, multi_row
from wfc.runtime.adapters.sql.schema import jobs, runs

NOW = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _by_plan(plan: Any, params: dict[str, Any]) -> list[Any]:
    """What the arguments are, walked from the plan one parameter at a time."""
    values = []
    for name, default, process in plan:
        if default is compiled._REQUIRED and name not in params:
            raise KeyError(name)
        value = params.get(name, default)
        values.append(value if process is None or value is None else process(value))
    return values


@pytest.mark.parametrize("dialect", [sqlite.dialect(), asyncpg.dialect()])  # type: ignore[no-untyped-call]
def test_arguments_are_the_plans(dialect: Any) -> None:
    statement = (
        runs.update()
        .where(runs.c.id == bindparam("record_id"))
        .values(input=bindparam("u_input"), updated_at=bindparam("now"), priority=7)
    )
    made = compiled.compiled_for(statement, dialect)
    assert made is not None
    params = {"record_id": "r1", "u_input": {"a": [1, "é"]}, "now": NOW}
    assert made.args(params) == _by_plan(made.plan, params)
    nones = {"record_id": "r1", "u_input": None, "now": None}
    assert made.args(nones) == _by_plan(made.plan, nones)
    assert [value for value in made.args(nones) if value is not None] == [7, "r1"]
    with pytest.raises(KeyError, match="record_id"):
        made.args({"u_input": 1, "now": NOW})


def test_names_that_need_quoting_stay_names() -> None:
    """A parameter's name goes into the function's text as a string literal, nothing more."""
    odd = "x' + str(1/0) + '\"\\n"
    made = compiled.compiled_for(select(text("1")).where(bindparam(odd) == 1), sqlite.dialect())
    assert made is not None
    assert made.args({odd: 2}) == [2, 1]


def test_rows_arguments_are_the_named_ones() -> None:
    """A multi-row INSERT's arguments read from the rows are those of its named parameters."""
    rows = [
        {"id": f"j{n}", "run_id": "r", "stage_id": "s", "created_at": NOW, "payload": {"n": n}}
        for n in range(3)
    ]
    keys = tuple(rows[0])
    statement, names = multi_row.with_rows(insert(jobs), keys, len(rows))
    made = compiled.compiled_for(statement, sqlite.dialect())
    assert made is not None
    by_name = multi_row.rows_params(names, keys, rows, None)
    assert made.rows_args(names, keys, rows, None) == made.args(by_name)
    assert made.rows_args(names, keys, rows, None) == made.args(by_name)  # made once, kept
    with pytest.raises(KeyError):
        made.rows_args(names, keys, [*rows[:2], {"id": "j9"}], None)


def test_only_transaction_ends_say_so() -> None:
    dialect = sqlite.dialect()
    for sql, ends in (("COMMIT", True), (" rollback", True), ("SELECT 1", False)):
        made = compiled.compiled_for(text(sql), dialect)
        assert made is not None and made.ends_transaction is ends


def test_rows_read_are_the_rows_converted_column_by_column() -> None:
    """`rows_of`'s reader, written out per result shape, gives each row's columns by name,
    each converted by its column's processor (None included, as SQLAlchemy does), and a
    column named with quotes and code stays a name."""
    odd = "x' + str(1/0) + '\"\\n"
    statement = select(runs.c.id, runs.c.input, runs.c.updated_at, runs.c.priority.label(odd))
    made = compiled.compiled_for(statement, sqlite.dialect())
    assert made is not None
    description = [
        (name, None, None, None, None, None, None) for name in ("id", "input", "updated_at", odd)
    ]
    raw = [("r1", '{"a": [1, null]}', "2030-01-02 03:04:05.678901", 4), ("r2", None, None, None)]
    expected = [
        {"id": "r1", "input": {"a": [1, None]}, "updated_at": NOW, odd: 4},
        {"id": "r2", "input": None, "updated_at": None, odd: None},
    ]
    assert made.rows_of(description, raw) == expected
    assert made.rows_of(description, raw) == expected  # the reader kept for the shape
    assert made.rows_of(description[:1], [("r3",)]) == [{"id": "r3"}]  # another shape
    for row, converted in zip(raw, made.rows_of(description, raw), strict=True):
        by_hand = {
            name: value if (process := made.result_processors.get(name)) is None else process(value)
            for name, value in zip((d[0] for d in description), row, strict=True)
        }
        assert converted == by_hand


@pytest.mark.parametrize(
    "instant",
    [
        NOW,
        datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: still six digits
        datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=UTC),  # a year of three digits: padded
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-7, minutes=-30))),
    ],
)
def test_an_instant_is_stored_as_sqlalchemys_datetime_text(instant: datetime) -> None:
    """SQLite's instants are formatted from their fields: the text SQLAlchemy's DATETIME
    stores for the same instant in UTC, which every row already written holds."""
    stored = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert stored is not None
    expected = stored(instant.astimezone(UTC).replace(tzinfo=None))
    compiled._INSTANT_TEXTS.clear()  # formatted, not the cache's answer
    assert compiled._utc_text(instant) == expected
    assert compiled._utc_text(instant) == expected  # the cache's answer


def test_instants_converted_in_turn_each_keep_their_own_text() -> None:
    """The instants kept (`_INSTANT_TEXTS`) are told apart by identity: a transaction's
    instants bound in any order, and more of them than are kept, each read as their own
    text, equal instants (other objects) included."""
    stored = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert stored is not None
    instants = [NOW + timedelta(microseconds=n) for n in range(3 * compiled._INSTANTS_KEPT)]
    for round_ in range(2):
        for n in (*range(0, len(instants), 3), *range(len(instants) - 1, -1, -2)):
            instant = instants[n] if round_ == 0 else instants[n].replace()  # equal, not same
            expected = stored(instant.replace(tzinfo=None))
            assert compiled._utc_text(instant) == expected
    assert len(compiled._INSTANT_TEXTS) <= compiled._INSTANTS_KEPT


def test_every_field_of_an_instant_is_padded_as_sqlalchemy_pads_it() -> None:
    """The text is joined from looked-up digits: each field at every width it can take
    (one to four digits of a year, one to six of a microsecond) reads as SQLAlchemy's."""
    stored = sqlite.DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert stored is not None
    years = (1, 9, 10, 99, 100, 999, 1000, 1970, 2026, 9999)
    micros = (0, 1, 9, 10, 999, 1000, 1001, 99999, 100000, 123456, 999000, 999999)
    for n, (year, micro) in enumerate((y, m) for y in years for m in micros):
        instant = datetime(year, 1 + n % 12, 1 + n % 28, n % 24, n % 60, (7 * n) % 60, micro)
        assert compiled._utc_text(instant.replace(tzinfo=UTC)) == stored(instant)


@pytest.mark.parametrize(
    "text",
    [
        "2030-01-02 03:04:05.000006",  # DATETIME's own text
        "0987-06-05 04:03:02.000001",
        "2030-01-02 03:04:05",  # without microseconds
        "2030-01-02T03:04:05.123456",
        "2030-01-02",
        "2030-01-02 03:04:05.000006+00:00",  # with an offset of its own: converted
        "2030-01-02 03:04:05-07:30",
        "2030-01-02T03:04:05Z",
        "2030-01-02 03:04:05.1+0100",  # 26 characters, with an offset
    ],
)
def test_an_instant_is_read_as_the_instant_in_utc_its_text_names(text: str) -> None:
    """SQLite's instants are read as UTC in one parse of the text with an offset added;
    a text that names its own offset is read with it and converted, as before."""
    read = datetime.fromisoformat(text)
    expected = read.replace(tzinfo=UTC) if read.tzinfo is None else read.astimezone(UTC)
    converted = compiled._utc_from_text(text)
    assert converted == expected
    assert converted.tzinfo is UTC
    assert compiled._utc_from_text(None) is None


def test_a_full_statement_cache_starts_again_and_keeps_what_comes_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past `MAX_COMPILED` entries the caches start again empty: a shape met after the
    cache filled up is compiled once, then found, not compiled at every call."""
    monkeypatch.setattr(compiled, "MAX_COMPILED", 2)
    monkeypatch.setattr(compiled, "_COMPILED", {})
    monkeypatch.setattr(multi_row, "MAX_COMPILED", 2)
    monkeypatch.setattr(multi_row, "_WITH_ROWS", {})
    dialect = sqlite.dialect()
    statements = [select(jobs.c.id).where(jobs.c.attempt == n) for n in range(3)]
    found = [compiled.compiled_for(statement, dialect) for statement in statements]  # 2 fill it
    assert compiled.compiled_for(statements[2], dialect) is found[2]
    keys = ("id", "run_id")
    for count in (1, 2):  # the cache full
        multi_row.with_rows(insert(jobs), keys, count)
    statement = insert(jobs)
    third = multi_row.with_rows(statement, keys, 3)[0]
    assert multi_row.with_rows(statement, keys, 3)[0] is third
