"""Statements a run sends every stage compile once for the driver path (`compiled_for`
gives them; None would send them through SQLAlchemy's execution layer every call), and
SQLite's JSON columns read NULL without SQLAlchemy's processor."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite.json import JSON as SqliteJson
from sqlalchemy.engine import Dialect
from sqlalchemy.types import JSON

from wfc.runtime.adapters.sql.compiled import compiled_for, sqlite_result
from wfc.runtime.adapters.sql.stages import _ACTIVE_STAGES
from wfc.runtime.records import ACTIVE

DIALECTS: list[Dialect] = [sqlite.dialect(), asyncpg.dialect(), postgresql.dialect()]  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"{d.name}+{d.driver}")
def test_the_active_stage_count_compiles_once(dialect: Dialect) -> None:
    made = compiled_for(_ACTIVE_STAGES, dialect)
    assert made is not None
    for status in ACTIVE:
        assert f"'{status.value}'" in made.sql


def test_sqlite_json_null_is_none_without_sqlalchemy(monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[Any] = []
    theirs = SqliteJson.result_processor

    def spied_processor(self: Any, dialect: Dialect, coltype: object) -> Any:
        original: Any = theirs(self, dialect, coltype)

        def spied(value: Any) -> Any:
            reached.append(value)
            return original(value)

        return spied

    monkeypatch.setattr(SqliteJson, "result_processor", spied_processor)
    read = sqlite_result(JSON(), sqlite.dialect())
    assert read is not None
    assert read(None) is None
    assert read('{"a": [1, null]}') == {"a": [1, None]}
    assert reached == []
    assert read(b'{"b": 2}') == {"b": 2}  # bytes: SQLAlchemy's processor, as before
    assert reached == [b'{"b": 2}']
