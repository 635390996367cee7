"""`BlobStore` in a SQL table: outputs live in the same database as the runs they belong to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.connections import Connections
from wfc.runtime.adapters.sql.drivers import dialect_name
from wfc.runtime.adapters.sql.rows import built_once, upsert_insert
from wfc.runtime.adapters.sql.schema import blobs

_b = blobs.c


_GET_BLOB = select(_b.data).where(_b.key == bindparam("key"))


def _put(conn: AsyncConnection) -> Any:
    statement = upsert_insert(conn, blobs).values(key=bindparam("key"), data=bindparam("data"))
    return statement.on_conflict_do_update(
        index_elements=["key"], set_={"data": statement.excluded.data}
    )


class SqlBlobStore:
    """Blobs as rows of `blobs`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._connections = Connections(engine)

    async def put(self, key: str, data: bytes) -> None:
        """Inside a transaction the write may travel with the transaction's next statement
        (`direct.defer`): nothing reads a blob in the transaction that stores it."""
        async with self._connections.single() as conn:
            statement = built_once(("put_blob", dialect_name(conn)), lambda: _put(conn))
            await direct.defer(conn, statement, {"key": key, "data": bytes(data)})

    async def get(self, key: str) -> bytes:
        async with self._connections.single() as conn:
            row = await direct.first(conn, _GET_BLOB, {"key": key})
        data = None if row is None else row["data"]
        if data is None:
            raise KeyError(f"Blob not found: {key}")
        return bytes(data)

    async def exists(self, key: str) -> bool:
        async with self._connections.single() as conn:
            return (await conn.execute(select(_b.key).where(_b.key == key))).first() is not None

    async def delete(self, key: str) -> None:
        async with self._connections.single() as conn:
            await conn.execute(delete(blobs).where(_b.key == key))

    async def list(self, prefix: str) -> list[str]:
        async with self._connections.single() as conn:
            rows = await conn.execute(
                select(_b.key).where(_b.key.startswith(prefix, autoescape=True)).order_by(_b.key)
            )
            return [str(key) for key in rows.scalars()]

    async def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        """One statement for all: a prefix `LIKE` cannot use the key's index under most
        collations, so each statement reads the table once, and one per run would make
        pruning grow with the square of the runs kept."""
        if not prefixes:
            return 0
        matches = [_b.key.startswith(prefix, autoescape=True) for prefix in prefixes]
        async with self._connections.single() as conn:
            result = await conn.execute(delete(blobs).where(or_(*matches)))
            return int(result.rowcount)
