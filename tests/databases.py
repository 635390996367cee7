"""Real databases for tests: a SQLite file in tmp_path, and PostgreSQL copies of a template.

PostgreSQL comes from `WFC_TEST_DATABASE_URL` (an existing database the
tests may use to create others). Without it the PostgreSQL cases skip, unless
`WFC_REQUIRE_POSTGRES` or `CI` is set: then a missing server fails the run.
The schema is created once in a template database per session; each test
gets `CREATE DATABASE … TEMPLATE`, dropped afterwards.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from wfc.runtime.adapters.sql import SqlStorage, open_storage
from wfc.runtime.adapters.sql.schema import metadata
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import FakeClock, TestKernel, make_test_kernel

_counter = itertools.count()
_template_ready: set[str] = set()


def postgres_url() -> str | None:
    """The admin URL, or None (skip) — or fail when PostgreSQL is required."""
    url = os.environ.get("WFC_TEST_DATABASE_URL")
    if url:
        return url
    if os.environ.get("WFC_REQUIRE_POSTGRES") or os.environ.get("CI"):
        pytest.fail("PostgreSQL is required here but WFC_TEST_DATABASE_URL is not set")
    pytest.skip("set WFC_TEST_DATABASE_URL to run the PostgreSQL cases")


async def _admin(url: str, sql: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def create_database(*, empty: bool = False) -> str:
    """A new PostgreSQL database with the schema (or `empty`); its URL. `drop_database` ends it."""
    admin = postgres_url()
    assert admin is not None
    base = make_url(admin)
    suffix = f"{os.getpid()}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    template = "template0" if empty else f"wfc_tpl_{suffix}"
    if not empty and template not in _template_ready:
        await _admin(admin, f"DROP DATABASE IF EXISTS {template}")
        await _admin(admin, f"CREATE DATABASE {template}")
        engine = create_async_engine(base.set(database=template))
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await engine.dispose()
        _template_ready.add(template)
    name = f"wfc_t_{suffix}_{next(_counter)}"
    await _admin(admin, f"CREATE DATABASE {name} TEMPLATE {template}")
    return base.set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    """Drop a database `create_database` made, even with connections still open."""
    admin = postgres_url()
    assert admin is not None
    await _admin(admin, f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")


@asynccontextmanager
async def postgres_database(*, empty: bool = False) -> AsyncIterator[str]:
    """A fresh PostgreSQL database with the schema (or `empty`), dropped afterwards; its URL."""
    url = await create_database(empty=empty)
    try:
        yield url
    finally:
        await drop_database(url)


@asynccontextmanager
async def postgres_store(*hooks: list[Any]) -> AsyncIterator[SqlStorage]:
    """Storage on a fresh PostgreSQL database with a fake clock, closed and dropped
    afterwards, and each test hook list in `hooks` emptied (what a test put there must
    not reach the next one)."""
    try:
        async with postgres_database() as url:
            store = open_storage(url, clock=FakeClock())
            try:
                yield store
            finally:
                await store.close()
    finally:
        for hook in hooks:
            hook.clear()


@asynccontextmanager
async def sql_storage(kind: str, directory: Path) -> AsyncIterator[SqlStorage]:
    """Storage with the schema on a SQLite file in `directory` or a fresh PostgreSQL
    database (`kind`: "sqlite" or "postgres"), closed (and dropped) afterwards."""
    if kind == "sqlite":
        store = open_storage(f"sqlite+aiosqlite:///{directory / 'wfc.db'}")
        await store.create_schema()
        try:
            yield store
        finally:
            await store.close()
        return
    async with postgres_database() as url:
        store = open_storage(url)
        try:
            yield store
        finally:
            await store.close()


def job_row(job_id: str, now: datetime, run_id: str = "r") -> dict[str, Any]:
    """A PENDING job's row for `jobs`, to insert directly (JSON with a list and a null in it)."""
    return {
        "id": job_id,
        "run_id": run_id,
        "workflow_id": "w",
        "stage_id": job_id,
        "status": Status.PENDING.value,
        "priority": 0,
        "attempt": 0,
        "max_attempts": 3,
        "payload": {"config": {"n": 1}, "tags": ["a", None]},
        "created_at": now,
        "updated_at": now,
    }


__all__ = [
    "create_database",
    "drop_database",
    "drop_templates",
    "job_row",
    "kernel_on_storage",
    "open_storage",
    "postgres_database",
    "postgres_url",
    "sql_storage",
]


async def drop_templates() -> None:
    """Drop the template databases this session created."""
    admin = os.environ.get("WFC_TEST_DATABASE_URL")
    if admin:
        for template in sorted(_template_ready):
            await _admin(admin, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
    _template_ready.clear()


@asynccontextmanager
async def kernel_on_storage(
    kind: str, workflows: list[Workflow], tmp_path: Path
) -> AsyncIterator[TestKernel]:
    """A `TestKernel` serving `workflows` on `kind` storage: `memory`, `sqlite` (a file in
    `tmp_path`) or `postgres` (a fresh database), sharing one fake clock."""
    if kind == "memory":
        yield make_test_kernel(*workflows)
        return
    clock = FakeClock()
    if kind == "sqlite":
        storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=clock)
        await storage.create_schema()
        yield make_test_kernel(*workflows, clock=clock, storage=storage)
        await storage.close()
        return
    async with postgres_database() as url:
        storage = open_storage(url, clock=clock)
        yield make_test_kernel(*workflows, clock=clock, storage=storage)
        await storage.close()
