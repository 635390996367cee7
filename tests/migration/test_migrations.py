"""Alembic: `upgrade head` builds exactly the declared schema; unknown revisions are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, insert, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.databases import postgres_database
from wfc.runtime.adapters.sql import SchemaRevisionError, open_storage, redact
from wfc.runtime.adapters.sql.engine import create_engine
from wfc.runtime.adapters.sql.migrate import check, current_revision, head_revision, upgrade
from wfc.runtime.adapters.sql.persistence import SqlPersistence
from wfc.runtime.adapters.sql.rows import to_values
from wfc.runtime.adapters.sql.schema import metadata, outbox, runs
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run, an_event


async def test_upgrade_head_gives_exactly_the_declared_schema(empty_engine: AsyncEngine) -> None:
    await upgrade(empty_engine)

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with empty_engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await current_revision(empty_engine) == head_revision()
    await check(empty_engine)
    await upgrade(empty_engine)  # idempotent


async def test_an_unmigrated_database_is_refused_with_the_fix(empty_engine: AsyncEngine) -> None:
    with pytest.raises(SchemaRevisionError) as caught:
        await check(empty_engine)
    message = str(caught.value)
    assert f"schema revision none, this wfc needs {head_revision()}" in message
    assert "run `wfc db upgrade --url" in message


async def test_a_database_from_a_newer_wfc_is_refused_not_touched(
    empty_engine: AsyncEngine,
) -> None:
    await upgrade(empty_engine)
    async with empty_engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    for action in (check, upgrade):
        with pytest.raises(
            SchemaRevisionError, match="at schema revision f00dfeed, this wfc needs"
        ):
            await action(empty_engine)
    assert await current_revision(empty_engine) == "f00dfeed"


async def test_the_embedded_sqlite_default_migrates_itself(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / '.wfc' / 'wfc.db'}")
    await storage.prepare()
    assert await current_revision(storage.engine) == head_revision()
    assert await storage.persistence.list_runs() == []
    await storage.close()


def test_urls_in_errors_hide_passwords() -> None:
    engine = create_engine("postgresql+asyncpg://app:s3cret@db.example:5432/wfc")
    error = SchemaRevisionError("x", None, "0001", "fix")
    assert "s3cret" not in str(error)
    assert redact(engine.url) == "postgresql+asyncpg://app:***@db.example:5432/wfc"
    assert re.search("s3cret", redact("postgresql://app:s3cret@h/db")) is None


# The outbox as revision 0001 made it: each event had an id of its own (dropped by 0017).
_OUTBOX_0001 = table(
    "outbox",
    *(column(name) for name in ("id", "run_id", "sequence", "event_type", "causation_id")),
    column("payload", outbox.c.payload.type),
    column("occurred_at", outbox.c.occurred_at.type),
)


async def test_an_older_database_is_upgraded_and_keeps_its_data(empty_engine: AsyncEngine) -> None:
    clock = FakeClock()
    await upgrade(empty_engine, "0001")
    persistence = SqlPersistence(empty_engine, clock)
    async with empty_engine.begin() as conn:  # a run and two events written by the 0001 code
        later = ("parent_run_id", "parent_stage_id", "trace_context")  # of later revisions
        values = {k: v for k, v in to_values(a_run(clock, "r1")).items() if k not in later}
        await conn.execute(insert(runs), [values])
        await conn.execute(
            insert(_OUTBOX_0001),
            [
                {
                    "id": f"e{n}",
                    "run_id": "r1",
                    "sequence": n,
                    "event_type": "stage:progress",
                    "payload": {},
                    "causation_id": "c",
                    "occurred_at": clock.now(),
                }
                for n in (1, 2)
            ],
        )
    await upgrade(empty_engine)
    assert await current_revision(empty_engine) == head_revision()
    assert await persistence.get_run("r1") == a_run(clock, "r1")
    appended = await persistence.append_outbox([an_event(clock, "e3", "r1")])
    assert [e.sequence for e in appended] == [3]
    assert [e.id for e in await persistence.outbox_of_run("r1")] == ["r1:1", "r1:2", "r1:3"]


_TRIGGERS = text(
    "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
)


async def test_upgrade_head_installs_the_triggers_create_all_does(
    empty_engine: AsyncEngine,
) -> None:
    """The NOTIFY triggers (`wfc_work`, `wfc_run_ended`) as `wfc db upgrade` installs them
    and as `metadata.create_all` (tests, `create_schema`) does: the same set."""
    if empty_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no NOTIFY triggers")
    await upgrade(empty_engine)
    async with empty_engine.connect() as conn:
        migrated = (await conn.execute(_TRIGGERS)).all()
    async with postgres_database(empty=True) as url:
        created = create_engine(url)
        try:
            async with created.begin() as conn:
                await conn.run_sync(metadata.create_all)
            async with created.connect() as conn:
                declared = (await conn.execute(_TRIGGERS)).all()
        finally:
            await created.dispose()
    assert migrated == declared
    assert ("wfc_runs_ended", "runs") in migrated
