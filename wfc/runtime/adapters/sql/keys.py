"""SQL for idempotency keys and log lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.rows import built_once, to_record, to_values, upsert_insert
from wfc.runtime.adapters.sql.schema import idempotency_keys, logs
from wfc.runtime.records import (
    Acquired,
    IdempotencyClaim,
    InProgress,
    JsonObject,
    LogRecord,
    Replay,
)

_k = idempotency_keys.c
# On a connection's info: a key acquired by prediction, not written yet (key, type, now).
PREDICTED = "wfc_predicted_idempotency_key"


async def acquire(
    conn: AsyncConnection, key: str, command_type: str, now: datetime, stale_after: timedelta | None
) -> IdempotencyClaim:
    statement = built_once(
        ("acquire_key", conn.dialect.name),
        lambda: (
            upsert_insert(conn, idempotency_keys)
            .values(
                key=bindparam("key"), command_type=bindparam("type"), started_at=bindparam("now")
            )
            .on_conflict_do_nothing(index_elements=["key", "command_type"])
            .returning(_k.key)
        ),
    )
    params = {"key": key, "type": command_type, "now": now}
    inserted = await direct.first(conn, statement, params)
    if inserted is not None:
        return Acquired()
    row = (
        await conn.execute(
            select(_k.started_at, _k.result).where(_k.key == key, _k.command_type == command_type)
        )
    ).first()
    if row is None:  # released between the two statements: try once more
        return await acquire(conn, key, command_type, now, stale_after)
    if row.result is not None:
        return Replay(result=row.result)
    if stale_after is None or now - row.started_at < stale_after:
        return InProgress()
    reclaimed = await conn.execute(
        update(idempotency_keys)
        .where(
            _k.key == key,
            _k.command_type == command_type,
            _k.started_at == row.started_at,
            _k.result.is_(None),
        )
        .values(started_at=now)
    )
    return Acquired() if reclaimed.rowcount == 1 else InProgress()


_COMPLETE = (
    update(idempotency_keys)
    .where(_k.key == bindparam("b_key"), _k.command_type == bindparam("b_type"))
    .values(result=bindparam("b_result"))
)


async def complete(conn: AsyncConnection, key: str, command_type: str, result: JsonObject) -> None:
    params = {"b_key": key, "b_type": command_type, "b_result": result}
    await direct.defer(conn, _COMPLETE, params)  # the last write of its transaction


def _insert_completed(dialect_insert: Callable[[Table], Any]) -> Any:
    """A key written with its result unless it is there already (then no row comes back),
    in the dialect whose `insert` (with ON CONFLICT) is given."""
    return (
        dialect_insert(idempotency_keys)
        .values(
            key=bindparam("key"),
            command_type=bindparam("type"),
            started_at=bindparam("now"),
            result=bindparam("result"),
        )
        .on_conflict_do_nothing(index_elements=["key", "command_type"])
        .returning(_k.key)
    )


_INSERT_COMPLETED = _insert_completed(postgresql.insert)


async def insert_completed(
    conn: AsyncConnection, key: str, command_type: str, now: datetime, result: JsonObject
) -> None:
    """PostgreSQL, in a transaction: write a key not acquired yet, with its result, held
    (`direct.defer`); the transaction's statement fails if the key is there already."""
    params = {"key": key, "type": command_type, "now": now, "result": result}
    await direct.defer(conn, _INSERT_COMPLETED, params, expect_row=True)


_INSERT_COMPLETED_SQLITE = _insert_completed(sqlite.insert)


async def insert_completed_now(
    conn: AsyncConnection, key: str, command_type: str, now: datetime, result: JsonObject
) -> None:
    """SQLite, in the command's write transaction: write a key not acquired yet, with its
    result; `ExpectationFailed` if the key is there already (the caller's transaction
    rolls back, and the protocol runs again reading the key). The key's own statement and
    its own commit before the transaction, and the update completing it inside, were two
    statements and a transaction of the create's seven."""
    params = {"key": key, "type": command_type, "now": now, "result": result}
    if await direct.first(conn, _INSERT_COMPLETED_SQLITE, params) is None:
        raise ExpectationFailed("the idempotency key was there already")


async def release(conn: AsyncConnection, key: str, command_type: str) -> None:
    await conn.execute(
        delete(idempotency_keys).where(_k.key == key, _k.command_type == command_type)
    )


async def add_log(conn: AsyncConnection, log: LogRecord) -> None:
    await conn.execute(insert(logs).values(**to_values(log)))


async def logs_of_run(conn: AsyncConnection, run_id: str) -> list[LogRecord]:
    statement = select(logs).where(logs.c.run_id == run_id).order_by(logs.c.position)
    return [to_record(LogRecord, row) for row in await conn.execute(statement)]
