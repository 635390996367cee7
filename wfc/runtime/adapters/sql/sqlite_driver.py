"""The SQLite connection as `direct` drives it: asyncpg's three calls, over `sqlite_thread`.

`direct` runs the hot statements on the driver connection, compiled once, without
SQLAlchemy's execution layer; this is the driver it gets on SQLite. Each call goes
through the same `sqlite_thread.Connection.run` that SQLAlchemy's cursor uses, so a
statement runs where that module says (inline inside a write transaction, tried
inline outside one, else one trip to the connection's thread) and in this
process's turn to write: only the layers above it are skipped.
"""

from __future__ import annotations

from typing import Any

from wfc.runtime.adapters.sql.sqlite_thread import Connection, Outcome, run_statement


class SqliteDriver:
    """`fetch`, `execute` and `is_closed`, as `direct` calls them on asyncpg's connection,
    and `run`, the outcome as it is, which `direct` reads on SQLite."""

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def run(self, sql: str, args: list[Any]) -> Outcome:
        """`sql`'s outcome as `sqlite_thread` gives it (description, rows, count, row id):
        `direct` converts the rows itself, into the mappings it returns."""
        return await self._connection.run(run_statement, sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """The rows `sql` returns, each keyed by result column name."""
        description, rows, _count, _rowid = await self._connection.run(run_statement, sql, args)
        if not description:
            return []
        names = [column[0] for column in description]
        return [dict(zip(names, row, strict=True)) for row in rows]

    async def execute(self, sql: str, *args: Any) -> str:
        """Run `sql`; its status as asyncpg words it, the count of rows changed last."""
        _description, _rows, count, _rowid = await self._connection.run(run_statement, sql, args)
        return f"SQLITE {max(count, 0)}"

    def is_closed(self) -> bool:
        return self._connection.thread.closed
