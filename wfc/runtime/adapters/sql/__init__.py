"""SQL adapters (SQLAlchemy 2, async): SQLite embedded by default, PostgreSQL for many workers.

`open_storage(url)` gives every SQL-backed port on one engine. The only
package that imports `sqlalchemy` is this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.memory.clock import SystemClock
from wfc.runtime.adapters.sql import sqlite_schema
from wfc.runtime.adapters.sql.ai_calls import SqlAICallLogger
from wfc.runtime.adapters.sql.blobs import SqlBlobStore
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.engine import PoolOptions, create_engine, default_url, redact
from wfc.runtime.adapters.sql.jobs import SqlJobTransport
from wfc.runtime.adapters.sql.persistence import SqlPersistence
from wfc.runtime.adapters.sql.revision import SchemaRevisionError, at_head
from wfc.runtime.adapters.sql.run_ends import PostgresRunEnds, SqliteRunEnds
from wfc.runtime.adapters.sql.schedules import SqlScheduleStore
from wfc.runtime.adapters.sql.schema import metadata
from wfc.runtime.adapters.sql.sqlite_wakeups import SqliteWakeups
from wfc.runtime.adapters.sql.wakeups import PostgresWakeups
from wfc.runtime.ports import Clock, IdSource
from wfc.runtime.run_end_waits import RunEndWaits


@dataclass(slots=True)
class SqlStorage:
    """Every SQL-backed port over one engine; `close()` disposes of its connections."""

    engine: AsyncEngine
    persistence: SqlPersistence
    jobs: SqlJobTransport
    blobs: SqlBlobStore
    ai_calls: SqlAICallLogger
    pinning: Connections
    # Who in this process waits for which of its runs: one listening for all of them.
    run_end_waits: RunEndWaits = field(init=False)

    def __post_init__(self) -> None:
        self.run_end_waits = RunEndWaits(self.run_ends)

    @property
    def shared_transactions(self) -> bool:
        """Always: the ports share one engine, and a call made inside a transaction joins it."""
        return True

    @property
    def wakeups(self) -> PostgresWakeups | SqliteWakeups | None:
        """Cross-process wakeups: LISTEN/NOTIFY on PostgreSQL, `PRAGMA data_version` on a
        SQLite file; None for an in-memory SQLite database (nothing else can write it)."""
        if self.engine.dialect.name == "postgresql":
            return PostgresWakeups(self.engine)
        path = self._file()
        return None if path is None else SqliteWakeups(path)

    @property
    def run_ends(self) -> PostgresRunEnds | SqliteRunEnds | None:
        """Run ends told across processes: NOTIFY on PostgreSQL, `PRAGMA data_version` on a
        SQLite file; None for an in-memory SQLite database (nothing else can end its runs)."""
        if self.engine.dialect.name == "postgresql":
            return PostgresRunEnds(self.engine)
        path = self._file()
        return None if path is None else SqliteRunEnds(path)

    def _file(self) -> Path | None:
        database = self.engine.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database)
        return None

    @property
    def schedules(self) -> SqlScheduleStore:
        """The schedules kept in this database (`wfc.runtime.schedule_store`)."""
        return SqlScheduleStore(self.engine)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return redact(self.engine.url)

    async def create_schema(self) -> None:
        """Create the tables directly (tests; real databases use migrations)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def prepare(self) -> None:
        """Make the database usable: the embedded SQLite file migrates itself; a PostgreSQL
        database must already be at this wfc's revision (`wfc db upgrade`), else
        `SchemaRevisionError` says what to run."""
        if await at_head(self.engine):
            return
        sqlite = self.engine.dialect.name == "sqlite"
        if sqlite and await sqlite_schema.create_if_new(self.engine):
            return
        # Alembic only now: its import and its scripts' parse were a seventh of `wfc run`.
        from wfc.runtime.adapters.sql import migrate

        if sqlite:
            await migrate.upgrade(self.engine)
        else:
            await migrate.check(self.engine)

    async def close(self) -> None:
        await self.run_end_waits.close()
        await self.engine.dispose()


def open_storage(
    url: str | None = None,
    *,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    worker_id: str = "worker",
    pool: PoolOptions | None = None,
) -> SqlStorage:
    """The SQL ports for `url` (default: the embedded SQLite file under `.wfc/`)."""
    engine = create_engine(url or default_url(), pool=pool)
    clock = clock or SystemClock()
    return SqlStorage(
        engine=engine,
        persistence=SqlPersistence(engine, clock),
        jobs=SqlJobTransport(engine, clock=clock, worker_id=worker_id, ids=ids),
        blobs=SqlBlobStore(engine),
        ai_calls=SqlAICallLogger(engine),
        pinning=Connections(engine, hold_while_released=bool(pool and pool.one_per_pin)),
    )


__all__ = [
    "PoolOptions",
    "SchemaRevisionError",
    "SqlAICallLogger",
    "SqlBlobStore",
    "SqlJobTransport",
    "SqlPersistence",
    "SqlScheduleStore",
    "SqlStorage",
    "default_url",
    "open_storage",
    "redact",
]
