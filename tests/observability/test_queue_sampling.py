"""The queue gauges' sample is a read: on SQLite it must not take the file's write lock,
which another process may hold for as long as its transaction runs."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from tests.databases import sql_storage
from wfc.observability.queues import queue_stats


async def test_a_sample_reads_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    async with sql_storage("sqlite", tmp_path) as store:
        database = store.engine.url.database
        assert database is not None
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing, as SQLite sees it
        try:
            # A BEGIN IMMEDIATE would wait here for the busy timeout (30 s).
            depth, lag = await asyncio.wait_for(
                queue_stats(store.engine, datetime(2026, 1, 1, tzinfo=UTC)), timeout=5
            )
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (depth, lag) == ({}, {})
