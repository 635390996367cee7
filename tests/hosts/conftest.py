"""Hosts on real time: a kernel on the system clock over memory, a SQLite file or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.databases import open_storage, postgres_database
from tests.kernel.conftest import Script, build_workflows
from wfc.runtime.adapters.memory import (
    MemoryAICallLogger,
    MemoryBlobStore,
    MemoryJobTransport,
    MemoryPersistence,
    SystemClock,
    UuidIds,
)
from wfc.runtime.adapters.sql import SqlStorage
from wfc.runtime.hosts import make_kernel
from wfc.runtime.kernel import Kernel
from wfc.runtime.ports import Storage, Wakeups
from wfc.runtime.registry import WorkflowMap
from wfc.testing import MemoryStorage


@dataclass
class Backend:
    """A storage and a way to make more kernels over it (one per simulated worker)."""

    name: str
    storage: Storage
    registry: WorkflowMap

    def kernel(self, storage: Storage | None = None) -> Kernel:
        return make_kernel(storage or self.storage, self.registry)

    @property
    def wakeups(self) -> Wakeups | None:
        return self.storage.wakeups if isinstance(self.storage, SqlStorage) else None


def memory_storage() -> MemoryStorage:
    clock = SystemClock()
    return MemoryStorage(
        persistence=MemoryPersistence(clock),
        jobs=MemoryJobTransport(clock, worker_id="w", ids=UuidIds()),
        blobs=MemoryBlobStore(),
        ai_calls=MemoryAICallLogger(),
    )


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(
    request: pytest.FixtureRequest, script: Script, tmp_path: Path
) -> AsyncIterator[Backend]:
    registry = WorkflowMap(build_workflows(script))
    if request.param == "memory":
        yield Backend("memory", memory_storage(), registry)
        return
    if request.param == "sqlite":
        storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}")
        await storage.create_schema()
        yield Backend("sqlite", storage, registry)
        await storage.close()
        return
    async with postgres_database() as url:
        storage = open_storage(url)
        yield Backend("postgres", storage, registry)
        await storage.close()
