"""Revision 0019 on PostgreSQL: the run-end trigger notifies only while a listener is
registered; back to 0018 it notifies every end again, and the table is gone."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.migrate import _config, upgrade
from wfc.runtime.adapters.sql.run_ends import CHANNEL

_INSERT_RUN = text(
    "INSERT INTO runs (id, workflow_id, workflow_name, plan_fingerprint, status, input, "
    "config, priority, created_at, updated_at, version) VALUES (:id, 'wf', 'Workflow', "
    "'sha256:x', 'RUNNING', '{}', '{}', 0, now(), now(), 1)"
)


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    def run(connection: Connection) -> None:
        command.downgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def _notified_by_an_end(engine: AsyncEngine, run_id: str) -> bool:
    """Whether ending a run sends a NOTIFY when no listener is registered: heard by a
    connection that LISTENs without registering, up to a marker sent after the end
    commits (notifications arrive in commit order)."""
    async with engine.connect() as conn:
        await conn.execute(_INSERT_RUN, {"id": run_id})
        await conn.commit()
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        heard: list[str] = []
        marker = asyncio.Event()

        def deliver(_conn: object, _pid: int, _channel: str, payload: str) -> None:
            heard.append(payload)
            if payload == "marker":
                marker.set()

        await driver.add_listener(CHANNEL, deliver)
        try:
            await conn.execute(
                text("UPDATE runs SET status = 'COMPLETED' WHERE id = :id"), {"id": run_id}
            )
            await conn.commit()
            await conn.execute(text(f"NOTIFY {CHANNEL}, 'marker'"))
            await conn.commit()
            await asyncio.wait_for(marker.wait(), 20)
        finally:
            await driver.remove_listener(CHANNEL, deliver)
    return run_id in heard


async def test_0019_and_back_gate_the_run_end_notification(empty_engine: AsyncEngine) -> None:
    if empty_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no NOTIFY trigger")
    await upgrade(empty_engine)
    assert not await _notified_by_an_end(empty_engine, "unheard")
    await _downgrade(empty_engine, "0018")
    assert await _notified_by_an_end(empty_engine, "heard")
    async with empty_engine.connect() as conn:
        gone = await conn.scalar(text("SELECT to_regclass('run_end_listeners') IS NULL"))
    assert gone
    await upgrade(empty_engine)
    assert not await _notified_by_an_end(empty_engine, "unheard again")
