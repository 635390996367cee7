"""The port conformance suite against memory, SQLite (a file on disk) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.databases import open_storage, postgres_database, sql_storage
from wfc.runtime.adapters.memory import (
    MemoryAICallLogger,
    MemoryBlobStore,
    MemoryJobTransport,
    MemoryPersistence,
)
from wfc.runtime.adapters.memory.schedules import MemoryScheduleStore
from wfc.runtime.adapters.sql.schedules import SqlScheduleStore
from wfc.testing import FakeClock
from wfc.testing.children import ChildrenConformance
from wfc.testing.conformance import PortConformance, Ports
from wfc.testing.fencing import FencingConformance
from wfc.testing.items import ItemsConformance, ServedPlansConformance
from wfc.testing.limits import LimitsConformance
from wfc.testing.listing import ListingConformance
from wfc.testing.presence import PresenceConformance
from wfc.testing.retention import RetentionConformance
from wfc.testing.schedules import ScheduleConformance, SchedulePorts
from wfc.testing.signals import SignalsConformance


class TestPorts(
    PortConformance,
    FencingConformance,
    ItemsConformance,
    ServedPlansConformance,
    PresenceConformance,
    RetentionConformance,
    LimitsConformance,
    ListingConformance,
    SignalsConformance,
    ChildrenConformance,
):
    @pytest.fixture(params=["memory", "sqlite", "postgres"])
    async def ports(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ports]:
        clock = FakeClock()
        if request.param == "memory":
            yield Ports(
                clock=clock,
                persistence=MemoryPersistence(clock),
                jobs=MemoryJobTransport(clock),
                blobs=MemoryBlobStore(),
                ai_calls=MemoryAICallLogger(),
            )
            return
        if request.param == "sqlite":
            storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=clock)
            await storage.create_schema()
            yield Ports(clock, storage.persistence, storage.jobs, storage.blobs, storage.ai_calls)
            await storage.close()
            return
        async with postgres_database() as url:
            storage = open_storage(url, clock=clock)
            yield Ports(clock, storage.persistence, storage.jobs, storage.blobs, storage.ai_calls)
            await storage.close()


class TestScheduleStores(ScheduleConformance):
    @pytest.fixture(params=["memory", "sqlite", "postgres"])
    async def schedule_ports(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> AsyncIterator[SchedulePorts]:
        clock = FakeClock()
        if request.param == "memory":
            yield SchedulePorts(clock, MemoryScheduleStore())
            return
        async with sql_storage(request.param, tmp_path) as storage:
            yield SchedulePorts(clock, SqlScheduleStore(storage.engine))
