"""A new SQLite file gets the schema the migrations make, from `sqlite_schema.sql`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wfc.runtime.adapters.sql import migrate, open_storage, sqlite_schema
from wfc.runtime.adapters.sql.sqlite_schema_dump import dump, dump_of_migrations, snapshot_text

WRITE_AGAIN = "python -m wfc.runtime.adapters.sql.sqlite_schema_dump"


@pytest.fixture(scope="module")
def migrated_dump() -> str:
    return dump_of_migrations()


def test_the_kept_schema_is_what_the_migrations_make(migrated_dump: str) -> None:
    kept = sqlite_schema.SCHEMA_FILE.read_text(encoding="utf-8")
    assert kept == snapshot_text(), f"sqlite_schema.sql is stale: run `{WRITE_AGAIN}`"
    assert 'INSERT INTO "alembic_version" VALUES(\'' in migrated_dump  # the stamp travels


async def test_a_new_file_gets_the_kept_schema_without_the_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_dump: str
) -> None:
    async def no_migrations(*_: object) -> None:
        raise AssertionError("a new file must not need the migrations")

    monkeypatch.setattr(migrate, "upgrade", no_migrations)
    path = tmp_path / "new.db"
    storage = open_storage(f"sqlite+aiosqlite:///{path}")
    try:
        await storage.prepare()
        assert await migrate.current_revision(storage.engine) == migrate.head_revision()
        assert await storage.persistence.list_runs() == []
    finally:
        await storage.close()
    assert dump(path) == migrated_dump


async def test_a_file_with_tables_is_left_to_the_migrations(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}")
    try:
        assert await sqlite_schema.create_if_new(storage.engine)
        assert not await sqlite_schema.create_if_new(storage.engine)  # no "already exists"
    finally:
        await storage.close()


async def test_storages_opening_one_new_file_at_once_all_open_it(
    tmp_path: Path, migrated_dump: str
) -> None:
    path = tmp_path / "shared.db"
    storages = [open_storage(f"sqlite+aiosqlite:///{path}") for _ in range(3)]
    try:
        await asyncio.gather(*(storage.prepare() for storage in storages))
    finally:
        for storage in storages:
            await storage.close()
    assert dump(path) == migrated_dump
