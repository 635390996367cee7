"""The statements a mapped stage's items are read, reset and cancelled with compile once
for the driver path: no expanding `IN` list through SQLAlchemy's execution layer, and
the same rows as before."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.databases import sql_storage
from wfc.runtime.adapters.memory.clock import FakeClock
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql import items as item_sql
from wfc.runtime.adapters.sql.compiled import compiled_for
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.rows import to_values
from wfc.runtime.adapters.sql.schema import items, jobs, runs, status_is
from wfc.runtime.records import ItemRecord, Status
from wfc.testing.port_fixtures import a_run

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = datetime(2030, 1, 2, 3, 4, 6, tzinfo=UTC)
DIALECTS: list[Dialect] = [sqlite.dialect(), asyncpg.dialect(), postgresql.dialect()]  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"{d.name}+{d.driver}")
def test_the_item_statements_compile_once(dialect: Dialect) -> None:
    done, failed = Status.COMPLETED.value, Status.FAILED.value
    for statement in (
        item_sql._items_of_stage(()),
        item_sql._items_of_stage((done, failed)),
        item_sql._reset_items((failed,)),
        item_sql._cancel_items(True),
        item_sql._cancel_items(False),
    ):
        assert compiled_for(statement, dialect) is not None


def _item(index: int, status: Status, stage_id: str = "m") -> dict[str, Any]:
    return to_values(
        ItemRecord(
            id=f"r1/{stage_id}/{index}",
            run_id="r1",
            stage_id=stage_id,
            item_index=index,
            status=status,
            created_at=NOW,
            updated_at=NOW,
            attempt=1,
        )
    )


async def test_items_are_read_reset_and_cancelled_without_sqlalchemy_s_execute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sql_storage("sqlite", tmp_path) as store:
        statuses = [Status.COMPLETED, Status.FAILED, Status.RUNNING, Status.PENDING]
        rows = [_item(n, status) for n, status in enumerate(statuses)]
        async with Connections(store.engine).transaction() as conn:
            run = to_values(a_run(FakeClock(NOW), "r1", status=Status.RUNNING))
            await direct.insert_rows(conn, insert(runs), [run])
            await direct.insert_rows(conn, insert(items), [*rows, _item(0, Status.RUNNING, "o")])
        through_sqlalchemy: list[str] = []
        theirs = AsyncConnection.execute

        async def spied(self: AsyncConnection, statement: Any, *args: Any, **kw: Any) -> Any:
            through_sqlalchemy.append(str(statement))
            return await theirs(self, statement, *args, **kw)

        monkeypatch.setattr(AsyncConnection, "execute", spied)
        async with Connections(store.engine).transaction() as conn:
            every = await item_sql.items_of_stage(conn, "r1", "m", [])
            assert [(i.item_index, i.status) for i in every] == list(enumerate(statuses))
            ended = [Status.FAILED, Status.COMPLETED]
            chosen = await item_sql.items_of_stage(conn, "r1", "m", ended)
            assert [i.item_index for i in chosen] == [0, 1]
            assert await item_sql.reset_items(conn, "r1", "m", [Status.FAILED], 2, LATER) == 1
            assert await item_sql.reset_items(conn, "r1", "m", [], 2, LATER) == 0
            assert await item_sql.cancel_items(conn, "r1", "m", LATER) == 3
            assert await item_sql.cancel_items(conn, "r1", None, LATER) == 1  # stage o's
            after = await item_sql.items_of_stage(conn, "r1", "m", [])
        assert through_sqlalchemy == []
        assert [i.status for i in after] == [Status.COMPLETED, *[Status.CANCELLED] * 3]
        reset = after[1]
        assert (reset.generation, reset.attempt, reset.version) == (2, 0, 3)
        assert (reset.updated_at, reset.completed_at) == (LATER, LATER)
        assert after[0].version == 1


def test_only_a_status_is_written_into_the_sql() -> None:
    """`status_is` writes its value into the statement's text: anything but a `Status`
    is refused before it gets there."""
    assert str(status_is(jobs, Status.PENDING)) == "jobs.status = 'PENDING'"
    with pytest.raises(ValueError, match="not a status"):
        status_is(jobs, "PENDING' OR 'x' = 'x")
