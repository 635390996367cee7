"""PostgreSQL notifies a run's end only while some connection listens for it (revision
0019): the trigger looks at `run_end_listeners`, where `PostgresRunEnds.listen`
registers its connection before it LISTENs.

Notifications are observed by a bare asyncpg connection that LISTENs without
registering, as a listener of revision 0018 did: it hears every NOTIFY sent, so what it
does not hear was not sent. A marker NOTIFY sent after the end commits, from the same
connection, arrives after anything that end sent (notifications arrive in commit order):
hearing the marker alone proves the end sent nothing, without waiting for a silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from tests.databases import postgres_database
from wfc.runtime.adapters.sql import SqlStorage, open_storage
from wfc.runtime.adapters.sql.run_ends import CHANNEL, PostgresRunEnds
from wfc.runtime.records import Status
from wfc.testing import FakeClock
from wfc.testing.port_fixtures import a_run

WITHIN = timedelta(seconds=20)
MARKER = "marker"
NO_SUCH_PID = 2_000_000_000  # above any pid a server hands out (pid_max is at most 2**22)


@pytest.fixture
async def storage() -> AsyncIterator[SqlStorage]:
    async with postgres_database() as url:
        store = open_storage(url, clock=FakeClock())
        yield store
        await store.close()


def _dsn(storage: SqlStorage) -> str:
    url = make_url(storage.engine.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Overhearing:
    """A bare connection listening on `wfc_run_ended`, not registered as a listener."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self._marker = asyncio.Event()

    def deliver(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self.heard.append(payload)
        if payload == MARKER:
            self._marker.set()

    async def until_marker(self) -> list[str]:
        """What was heard up to the marker (`_end` sends it after each end)."""
        await asyncio.wait_for(self._marker.wait(), WITHIN.total_seconds())
        self._marker.clear()
        heard, self.heard = self.heard, []
        return heard


@pytest.fixture
async def overheard(storage: SqlStorage) -> AsyncIterator[Overhearing]:
    overhearing = Overhearing()
    conn = await asyncpg.connect(_dsn(storage))
    await conn.add_listener(CHANNEL, overhearing.deliver)
    yield overhearing
    await conn.close()


async def _running(storage: SqlStorage, run_id: str) -> None:
    await storage.persistence.create_run(a_run(FakeClock(), run_id, status=Status.RUNNING))


async def _end(storage: SqlStorage, run_id: str) -> None:
    """End `run_id` in a transaction of its own, then send the marker."""
    conn = await asyncpg.connect(_dsn(storage))
    try:
        await conn.execute("UPDATE runs SET status = 'COMPLETED' WHERE id = $1", run_id)
        await conn.execute(f"NOTIFY {CHANNEL}, '{MARKER}'")
    finally:
        await conn.close()


async def _listener_pids(storage: SqlStorage) -> list[int]:
    conn = await asyncpg.connect(_dsn(storage))
    try:
        return [row[0] for row in await conn.fetch("SELECT pid FROM run_end_listeners")]
    finally:
        await conn.close()


def _run_ends(storage: SqlStorage) -> PostgresRunEnds:
    run_ends = storage.run_ends
    assert isinstance(run_ends, PostgresRunEnds)
    return run_ends


async def test_an_end_is_notified_only_while_a_listener_is_registered(
    storage: SqlStorage, overheard: Overhearing
) -> None:
    for run_id in ("before", "during", "after"):
        await _running(storage, run_id)

    await _end(storage, "before")
    assert await overheard.until_marker() == [MARKER]

    told: list[str | None] = []
    async with _run_ends(storage).listen(told.append):
        await _end(storage, "during")
        assert await overheard.until_marker() == ["during", MARKER]

    await _end(storage, "after")
    assert await overheard.until_marker() == [MARKER]
    assert "during" in told


async def test_an_end_in_flight_as_the_listener_registers_wakes_it_when_it_commits(
    storage: SqlStorage,
) -> None:
    """The race: the end's trigger looked before the registration committed (no one
    listened: no NOTIFY), and the end commits after the listener's waiters read the run
    (they saw it running). The listener waits that transaction out and wakes them."""
    await _running(storage, "racing")
    ending = await asyncpg.connect(_dsn(storage))
    try:
        transaction = ending.transaction()
        await transaction.start()
        await ending.execute("UPDATE runs SET status = 'COMPLETED' WHERE id = 'racing'")
        told: list[str | None] = []
        woken = asyncio.Event()

        def on_end(run_id: str | None) -> None:
            told.append(run_id)
            woken.set()

        async with _run_ends(storage).listen(on_end):
            assert told == []  # nothing has ended yet for anyone to read
            await transaction.commit()
            await asyncio.wait_for(woken.wait(), WITHIN.total_seconds())
        assert told == [None]  # "runs may have moved": the trigger did not notify it
    finally:
        await ending.close()


async def test_a_listener_registers_while_it_listens_and_prunes_the_dead(
    storage: SqlStorage,
) -> None:
    conn = await asyncpg.connect(_dsn(storage))
    try:
        await conn.execute("INSERT INTO run_end_listeners (pid) VALUES ($1)", NO_SUCH_PID)
        alive = conn.get_server_pid()  # not listening, but alive: kept
        await conn.execute("INSERT INTO run_end_listeners (pid) VALUES ($1)", alive)
        async with _run_ends(storage).listen(lambda _run_id: None):
            during = await _listener_pids(storage)
        after = await _listener_pids(storage)
    finally:
        await conn.close()
    assert NO_SUCH_PID not in during
    assert alive in during
    assert len(during) == 2  # the live row and the listener's own
    assert after == [alive]
