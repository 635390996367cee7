"""The migration tests' database: an empty one of each kind, to migrate as each test says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.databases import postgres_database
from wfc.runtime.adapters.sql.engine import create_engine


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'wfc.db'}")
        yield engine
        await engine.dispose()
        return
    async with postgres_database(empty=True) as url:
        engine = create_engine(url)
        yield engine
        await engine.dispose()
