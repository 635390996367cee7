"""Fixtures of the faults suite: a migrated database per test (SQLite always, PostgreSQL when
`WFC_TEST_DATABASE_URL` is set — required under `CI`), the compiled workflows, and a fleet of
workers that is always reaped.

PostgreSQL databases are copies of one migrated template per module, so each test starts
from an empty, current schema in a few hundred milliseconds instead of migrating; the copies
and the template are dropped even when a test fails. Migrating (rather than `create_all`)
matters: `wfc worker` refuses a database that is not at its revision.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.databases import postgres_url
from tests.faults.harness import Fleet, compile_workflows, worker_env
from wfc.runtime.adapters.sql import migrate


@dataclass(frozen=True)
class Database:
    """One test's database: its kind ("sqlite" or "postgres") and URL."""

    kind: str
    url: str


async def _admin(sql: str) -> None:
    admin = postgres_url()
    assert admin is not None
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _migrate(url: str) -> None:
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def _name(what: str) -> str:
    return f"wfc_faults_{what}_{os.getpid()}_{random.randrange(1 << 30)}"


@pytest.fixture(scope="module")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database for this module's tests to copy; dropped afterwards."""
    admin = postgres_url()
    assert admin is not None
    name = _name("tpl")
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        asyncio.run(_migrate(make_url(admin).set(database=name).render_as_string(False)))
        yield name
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database for one test, dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
        asyncio.run(_migrate(url))
        yield Database("sqlite", url)
        return
    template = request.getfixturevalue("postgres_template")
    admin = postgres_url()
    assert admin is not None
    name = _name("t")
    asyncio.run(_admin(f"CREATE DATABASE {name} TEMPLATE {template}"))
    try:
        yield Database("postgres", make_url(admin).set(database=name).render_as_string(False))
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`chain` and `polled`, compiled once per module with their stage code."""
    return compile_workflows(tmp_path_factory.mktemp("faults_packages"))


@pytest.fixture
def fleet(database: Database, tmp_path: Path) -> Iterator[Fleet]:
    """The test's workers; whatever happens, none outlives the test."""
    workers = Fleet(tmp_path, worker_env(database.url, tmp_path))
    try:
        yield workers
    finally:
        workers.close()


@pytest.fixture
def rng() -> random.Random:
    """The randomness of a scenario, seeded from FAULTS_SEED when set; the seed is in the
    failure report (`-ra` shows it), so a failing schedule of faults can be replayed."""
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(1 << 30))
    print(f"FAULTS_SEED={seed}")
    return random.Random(seed)
