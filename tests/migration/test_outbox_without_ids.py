"""Revision 0017: the outbox's event ids are no longer indexed. A database with events
written before it keeps them (their order, their delivery state, their ids), the
flusher finds them by position, and a worker of the older wfc still running beside
new ones (a rolling deploy) can still append and mark events by id."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.runtime.adapters.sql.migrate import _config, upgrade
from wfc.runtime.adapters.sql.persistence import SqlPersistence
from wfc.runtime.adapters.sql.rows import to_values
from wfc.runtime.adapters.sql.schema import runs
from wfc.testing import FakeClock
from wfc.testing.conformance import a_run, an_event

# Events as the 0016 code wrote them, random ids and all: r1's first is published, its
# second parked in the DLQ, its third and r2's first wait (appended in that order).
_OLD_EVENTS = [
    # position, id, run, sequence, published, parked
    (7, "9f0c-a", "r1", 1, True, False),
    (8, "1b2e-b", "r1", 2, False, True),
    (9, "c4d1-c", "r2", 1, False, False),
    (10, "05aa-d", "r1", 3, False, False),
]


async def _downgrade(engine: AsyncEngine, revision: str) -> None:
    def run(connection: Connection) -> None:
        command.downgrade(_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def _indexed_columns(engine: AsyncEngine) -> list[str]:
    """The outbox's indexes and unique constraints, each as its columns."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = await conn.execute(
                text(
                    "SELECT group_concat(i.name) FROM pragma_index_list('outbox') AS l, "
                    "pragma_index_info(l.name) AS i GROUP BY l.name"
                )
            )
            return sorted(str(columns) for (columns,) in rows)
        rows = await conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE tablename = 'outbox'")
        )
        return sorted(str(d).split("(", 1)[1].split(")")[0].replace(" ", "") for (d,) in rows)


async def _id_column(engine: AsyncEngine, run_id: str, sequence: int) -> str | None:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT id FROM outbox WHERE run_id = :run_id AND sequence = :sequence"),
            {"run_id": run_id, "sequence": sequence},
        )
    return None if found is None else str(found)


async def _write_old_events(engine: AsyncEngine, clock: FakeClock) -> None:
    async with engine.begin() as conn:
        for run_id in ("r1", "r2"):
            values = to_values(a_run(clock, run_id))
            await conn.execute(runs.insert(), [values | {"last_sequence": 3}])
        for position, event_id, run_id, sequence, published, parked in _OLD_EVENTS:
            await conn.execute(
                text(
                    "INSERT INTO outbox (position, id, run_id, sequence, event_type, payload, "
                    "causation_id, occurred_at, published_at, retry_count, dlq_at) VALUES "
                    "(:position, :id, :run_id, :sequence, 'stage:progress', :payload, 'c', "
                    ":at, :published_at, :retries, :dlq_at)"
                ),
                {
                    "position": position,
                    "id": event_id,
                    "run_id": run_id,
                    "sequence": sequence,
                    "payload": f'{{"n": "{event_id}"}}',
                    "at": clock.now(),
                    "published_at": clock.now() if published else None,
                    "retries": 3 if parked else 0,
                    "dlq_at": clock.now() if parked else None,
                },
            )
        await conn.execute(text("UPDATE runs SET last_sequence = 1 WHERE id = 'r2'"))
        if engine.dialect.name == "postgresql":  # as if the sequence had given the positions
            await conn.execute(
                text("SELECT setval(pg_get_serial_sequence('outbox', 'position'), 10)")
            )


async def test_0017_keeps_old_events_in_order_and_delivers_them(empty_engine: AsyncEngine) -> None:
    engine, clock = empty_engine, FakeClock()
    await upgrade(engine, "0016")
    await _write_old_events(engine, clock)
    before = await _indexed_columns(engine)
    await upgrade(engine)
    assert "id" in before and "id" not in await _indexed_columns(engine)
    p = SqlPersistence(engine, clock)

    waiting = await p.unpublished_outbox(10)
    assert [(e.id, e.position, e.payload) for e in waiting] == [
        ("r2:1", 9, {"n": "c4d1-c"}),
        ("r1:3", 10, {"n": "05aa-d"}),
    ]
    clock.advance(timedelta(seconds=1))
    await p.mark_published(waiting[:1], clock.now())
    assert await p.increment_outbox_retry(waiting[1]) == 1
    assert await p.replay_dlq(10) == 1  # r1:2, parked before the upgrade
    assert [e.id for e in await p.unpublished_outbox(10)] == ["r1:2", "r1:3"]
    [r2] = await p.outbox_of_run("r2")
    assert (r2.published_at, r2.payload) == (clock.now(), {"n": "c4d1-c"})

    appended = await p.append_outbox([an_event(clock, "new", "r1")])
    assert [e.sequence for e in appended] == [4]
    later = [(e.id, e.position) for e in await p.unpublished_outbox(10)]
    assert later[:2] == [("r1:2", 8), ("r1:3", 10)]
    assert later[2][0] == "r1:4" and later[2][1] is not None and later[2][1] > 10
    # The id column: kept for the old rows, the derived id for new ones (what a worker of
    # the older wfc marks them by).
    assert await _id_column(engine, "r1", 3) == "05aa-d"
    assert await _id_column(engine, "r1", 4) == "r1:4"


async def test_a_worker_before_0017_still_appends_and_marks_by_id(
    empty_engine: AsyncEngine,
) -> None:
    """What such a worker sends: its own random ids in, its deliveries marked by id."""
    engine, clock = empty_engine, FakeClock()
    await upgrade(engine, "0016")
    await _write_old_events(engine, clock)
    await upgrade(engine)
    new = SqlPersistence(engine, clock)
    await new.append_outbox([an_event(clock, "new", "r2")])
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO outbox (id, run_id, sequence, event_type, payload, causation_id, "
                "occurred_at) VALUES ('77e0-e', 'r2', 3, 'stage:progress', '{}', 'c', :at)"
            ),
            {"at": clock.now()},
        )
        await conn.execute(
            text("UPDATE outbox SET published_at = :at WHERE id IN ('c4d1-c', 'r2:2', '77e0-e')"),
            {"at": clock.now()},
        )
    assert [(e.id, e.published_at) for e in await new.outbox_of_run("r2")] == [
        ("r2:1", clock.now()),
        ("r2:2", clock.now()),
        ("r2:3", clock.now()),
    ]


async def test_0017_and_back_keeps_every_id(empty_engine: AsyncEngine) -> None:
    engine, clock = empty_engine, FakeClock()
    await upgrade(engine, "0016")
    await _write_old_events(engine, clock)
    await upgrade(engine)
    await SqlPersistence(engine, clock).append_outbox([an_event(clock, "new", "r2")])
    await _downgrade(engine, "0016")
    assert "id" in await _indexed_columns(engine)
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT position, id FROM outbox ORDER BY position"))
        assert [tuple(row) for row in rows][:4] == [
            (7, "9f0c-a"),
            (8, "1b2e-b"),
            (9, "c4d1-c"),
            (10, "05aa-d"),
        ]
    assert await _id_column(engine, "r2", 2) == "r2:2"
    await upgrade(engine)
    assert [e.id for e in await SqlPersistence(engine, clock).outbox_of_run("r1")] == [
        "r1:1",
        "r1:2",
        "r1:3",
    ]


async def test_a_position_given_again_after_a_prune_is_not_marked_for_the_event_read(
    empty_engine: AsyncEngine,
) -> None:
    """SQLite gives a deleted last row's rowid to the next insert: an event pruned while
    the flush delivered it must not let the flush mark the event appended after it."""
    engine, clock = empty_engine, FakeClock()
    await upgrade(engine)
    p = SqlPersistence(engine, clock)
    await p.create_run(a_run(clock, "r1"))
    await p.append_outbox([an_event(clock, "first", "r1")])
    [read] = await p.unpublished_outbox(10)
    async with engine.begin() as conn:  # pruned, then a new event appended
        await conn.execute(text("DELETE FROM outbox WHERE position = :p"), {"p": read.position})
    await p.append_outbox([an_event(clock, "second", "r1")])
    [new] = await p.unpublished_outbox(10)
    if engine.dialect.name == "sqlite":
        assert new.position == read.position  # the case guarded against
    await p.mark_published([read], clock.now())
    assert await p.increment_outbox_retry(read) == 0
    await p.move_to_dlq(read, clock.now())
    assert [
        (e.id, e.published_at, e.retry_count, e.dlq_at) for e in await p.outbox_of_run("r1")
    ] == [("r1:2", None, 0, None)]


async def test_a_run_id_of_64_characters_names_its_events(empty_engine: AsyncEngine) -> None:
    """The derived id is longer than the 64 characters the random ids took; a downgrade
    shortens those that are longer, keeping them unique."""
    engine, clock = empty_engine, FakeClock()
    await upgrade(engine)
    run_id = "r" * 64
    p = SqlPersistence(engine, clock)
    await p.create_run(a_run(clock, run_id))
    for n in range(10):
        await p.append_outbox([an_event(clock, f"e{n}", run_id)])
    assert await _id_column(engine, run_id, 10) == f"{run_id}:10"
    await _downgrade(engine, "0016")
    async with engine.connect() as conn:
        ids = list((await conn.execute(text("SELECT id FROM outbox"))).scalars())
    assert len(set(ids)) == 10
    if engine.dialect.name == "postgresql":
        assert max(len(i) for i in ids) <= 64
