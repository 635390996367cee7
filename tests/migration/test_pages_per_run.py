"""Revision 0016: the claim index holds PENDING runs only, SQLite's blobs are one b-tree;
an older database keeps its blobs through the upgrade and back."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.blobs import SqlBlobStore
from wfc.runtime.adapters.sql.migrate import _config, upgrade


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    def run(connection: Connection) -> None:
        command.downgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def _claim_index_is_partial(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT sql FROM sqlite_schema WHERE name = 'ix_runs_status_claim_order'"
        else:
            sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_runs_status_claim_order'"
        definition = str(await conn.scalar(text(sql)))
    return "WHERE" in definition.upper() and "PENDING" in definition


async def _blobs_without_rowid(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        sql = await conn.scalar(text("SELECT sql FROM sqlite_schema WHERE name = 'blobs'"))
    return "WITHOUT ROWID" in str(sql).upper()


async def test_0016_and_back_keep_the_blobs(empty_engine: AsyncEngine) -> None:
    engine = empty_engine
    await upgrade(engine, "0015")
    blobs = SqlBlobStore(engine)
    await blobs.put("runs/w/r1/a/output.json", b"[1]")
    await upgrade(engine)
    assert await _claim_index_is_partial(engine)
    if engine.dialect.name == "sqlite":
        assert await _blobs_without_rowid(engine)
    assert await blobs.get("runs/w/r1/a/output.json") == b"[1]"
    await blobs.put("runs/w/r1/a/output.json", b"[2]")  # the upsert, on the new table
    await blobs.put("runs/w/r1/b/output.json", b"[3]")
    assert await blobs.list("runs/w/r1/") == ["runs/w/r1/a/output.json", "runs/w/r1/b/output.json"]

    await _downgrade(engine, "0015")
    assert not await _claim_index_is_partial(engine)
    if engine.dialect.name == "sqlite":
        assert not await _blobs_without_rowid(engine)
    assert await blobs.get("runs/w/r1/a/output.json") == b"[2]"
    assert await blobs.get("runs/w/r1/b/output.json") == b"[3]"
