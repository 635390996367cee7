"""On asyncpg, `UtcDateTime`'s instants and JSON values are converted in one call
(`compiled.asyncpg_bind`, `asyncpg_result`): the values SQLAlchemy's own processors give,
errors alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import JSON as SaJson
from sqlalchemy import DateTime, Integer
from sqlalchemy.dialects.postgresql import asyncpg

from wfc.runtime.adapters.sql.compiled import asyncpg_bind, asyncpg_result
from wfc.runtime.adapters.sql.schema import Json, UtcDateTime

DIALECT = asyncpg.dialect()  # type: ignore[no-untyped-call]
INSTANTS: list[Any] = [
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris")),
    datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("UTC")),
    datetime.max.replace(tzinfo=UTC),
]


def _sqlalchemys(kind: str) -> Any:
    impl = UtcDateTime().dialect_impl(DIALECT)
    if kind == "bind":
        return impl.bind_processor(DIALECT)
    return impl.result_processor(DIALECT, None)


@pytest.mark.parametrize("value", INSTANTS)
def test_bound_as_sqlalchemy_binds(value: datetime) -> None:
    ours: Any = asyncpg_bind(UtcDateTime(), DIALECT)
    theirs = _sqlalchemys("bind")
    assert ours is not theirs
    bound, expected = ours(value), theirs(value)
    assert bound == expected
    assert bound.tzinfo is expected.tzinfo
    assert bound.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [*INSTANTS, datetime(2026, 1, 2, 3, 4, 5), None])
def test_read_as_sqlalchemy_reads(value: datetime | None) -> None:
    ours: Any = asyncpg_result(UtcDateTime(), DIALECT)
    theirs = _sqlalchemys("result")
    read, expected = ours(value), theirs(value)
    assert read == expected
    if read is not None:
        assert read.tzinfo is expected.tzinfo


def test_a_naive_instant_is_refused_alike() -> None:
    with pytest.raises(ValueError) as theirs:
        _sqlalchemys("bind")(datetime(2026, 1, 2))
    bind: Any = asyncpg_bind(UtcDateTime(), DIALECT)
    with pytest.raises(ValueError) as ours:
        bind(datetime(2026, 1, 2))
    assert str(ours.value) == str(theirs.value)


def test_other_types_keep_sqlalchemys_processors() -> None:
    for kind in (Integer(), DateTime(timezone=True), Json):
        impl = kind.dialect_impl(DIALECT)
        assert (asyncpg_bind(kind, DIALECT) is None) == (impl.bind_processor(DIALECT) is None)
        expected = impl.result_processor(DIALECT, None)
        assert (asyncpg_result(kind, DIALECT) is None) == (expected is None)


JSON_VALUES: list[Any] = [
    {"a": [1, 2.5, None, "é", {"b": True}], "c": {}},
    [],
    'text with \u2028 and "quotes"',
    0,
    -3,
    1e300,
    float("nan"),
    float("inf"),
    False,
    {"nested": [[[]]], "n": 10**30},
]


@pytest.mark.parametrize("kind", [Json, SaJson()], ids=["jsonb", "json"])
@pytest.mark.parametrize("value", JSON_VALUES)
def test_json_bound_as_sqlalchemy_binds(kind: Any, value: Any) -> None:
    """On asyncpg a JSON value is the text SQLAlchemy's processor makes (`json.dumps`), in
    one call; its NULL sentinel still goes to SQLAlchemy's."""
    ours: Any = asyncpg_bind(kind, DIALECT)
    theirs: Any = kind.dialect_impl(DIALECT).bind_processor(DIALECT)
    assert "json_text" in ours.__qualname__
    assert ours(value) == theirs(value)
    assert ours(SaJson.NULL) == theirs(SaJson.NULL)
