"""Engines for the two supported databases, with the settings each needs.

SQLite is for one machine: WAL so readers never block the writer, a
`busy_timeout` so writers wait instead of failing with "database is locked",
`foreign_keys=ON`, `synchronous=NORMAL` unless the URL asks for `?synchronous=full`
(`sqlite_synchronous` says what each risks), and every transaction opened with `BEGIN IMMEDIATE` so a
read-then-write transaction takes the write lock up front and cannot fail to
upgrade it (one-statement work skips the transaction: see `autocommit`).
PostgreSQL is for many workers on many machines and claims work
with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from wfc.runtime.adapters.sql import sqlite_dbapi

DEFAULT_SQLITE_PATH = Path(".wfc") / "wfc.db"
AUTOCOMMIT_OPTION = "wfc_autocommit"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS = ("normal", "full")


def default_url() -> str:
    """The embedded default: a SQLite file under `.wfc/` in the working directory."""
    return f"sqlite+aiosqlite:///{DEFAULT_SQLITE_PATH}"


def redact(url: str | URL) -> str:
    """The URL with any password hidden, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolOptions:
    """Connection pool sizing (PostgreSQL, and a SQLite file; an in-memory SQLite database
    keeps SQLAlchemy's own pool)."""

    size: int = 5
    max_overflow: int = 10
    timeout_s: float = 30.0
    # A connection is kept for every pin, so a pin may hold its own while user code runs.
    one_per_pin: bool = False

    @classmethod
    def for_slots(cls, slots: int) -> PoolOptions:
        """A pool that keeps a connection for each of a worker's job slots, plus its
        orchestrator's, its outbox flusher's, its wakeup listener's, a heartbeat's and, in
        a process that also waits for runs (`wait_for_run`), its run-end listener's (kept
        only once opened: a worker that never waits never opens it). Connections beyond the
        pool's size are closed when given back, and a worker pins one per job: with fewer
        kept than it uses at once, it opened and closed a connection every few runs, each
        a new server process and every statement prepared again.

        With a connection kept for each slot, a slot's pin holds its connection while a
        stage body runs (`Connections.released`) instead of giving it back and taking it
        again after: each checkout cycle costs about as much CPU as a statement."""
        return cls(size=slots + 5, one_per_pin=True)


def _normalise(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed


def create_engine(url: str | URL, *, pool: PoolOptions | None = None) -> AsyncEngine:
    """An async engine for `url` (plain `sqlite:`/`postgresql:` URLs get the async drivers)."""
    parsed = _normalise(url)
    options = pool or PoolOptions()
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, options)
    return create_async_engine(
        parsed,
        pool_size=options.size,
        max_overflow=options.max_overflow,
        pool_timeout=options.timeout_s,
        pool_pre_ping=False,
    )


def sqlite_synchronous(url: URL) -> str:
    """The durability a SQLite URL asks for with `?synchronous=` (default `normal`).

    In WAL mode `normal` syncs the WAL only at checkpoints: a committed transaction
    survives the process crashing (kill -9 included), but the last ones before a power
    loss or an OS crash can be lost, never corrupted. `full` syncs the WAL at every
    commit, closing that window for a sync per transaction. Raises `ValueError` naming
    the choices for anything else."""
    value = str(url.query.get("synchronous", "normal")).lower()
    if value not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"synchronous={value!r}: a SQLite URL takes synchronous=normal or full")
    return value


def _sqlite_engine(url: URL, pool: PoolOptions) -> AsyncEngine:
    synchronous = sqlite_synchronous(url).upper()
    url = url.difference_update_query(["synchronous"])
    database = url.database or ""
    sizing: dict[str, Any] = {}
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # A file database is pooled like PostgreSQL's: a worker holds a connection per slot,
        # and one closed for being beyond the pool's size costs a thread and PRAGMAs to open.
        sizing = {"pool_size": pool.size, "max_overflow": pool.max_overflow}
    engine = create_async_engine(
        url,
        # Each connection's own thread, and few trips to it (see `sqlite_dbapi`).
        module=sqlite_dbapi.dbapi(
            SQLITE_BUSY_TIMEOUT_MS / 1000, commits_inline=synchronous == "NORMAL"
        ),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        **sizing,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN IMMEDIATE is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        if synchronous == "NORMAL":
            # A COMMIT then syncs nothing and runs on the event loop's thread; the WAL is
            # checkpointed on the connections' own threads instead (`sqlite_dbapi`).
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # One-statement work runs in SQLite's own autocommit: a statement that writes takes
        # the write lock when it starts (waiting on `busy_timeout`), one that reads never
        # waits for a writer in WAL mode.
        if not connection.get_execution_options().get(AUTOCOMMIT_OPTION, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same engine for work that is one statement, or statements each safe on its own.

    Such work needs no transaction of its own, and on PostgreSQL a transaction
    costs two round trips (BEGIN, COMMIT) on top of the statement: a stage
    execution made a dozen of them before its reads and single writes ran
    this way.
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{AUTOCOMMIT_OPTION: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")
