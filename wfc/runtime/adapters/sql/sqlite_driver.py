"""The SQLite connection as `direct` drives it, over `sqlite_dbapi.Connection`.

`direct` runs the hot statements on the driver connection, compiled once, without
SQLAlchemy's execution layer; this is the driver it gets on SQLite. Each statement
goes through the same `sqlite_dbapi.Connection` that SQLAlchemy's cursor uses, so it
runs where that module says (inline inside a write transaction, tried inline outside
one, else one trip to the connection's thread) and in this process's turn to write:
only the layers above it are skipped.
"""

from __future__ import annotations

from typing import Any

from wfc.runtime.adapters.sql import sqlite_thread
from wfc.runtime.adapters.sql.sqlite_dbapi import Connection
from wfc.runtime.adapters.sql.sqlite_thread import Outcome


class SqliteDriver:
    """`run_within`, `run` and `is_closed`: the outcome of a statement as `sqlite_thread`
    gives it (description, rows, count, row id), which `direct` converts itself."""

    __slots__ = ("_connection", "run_within")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        # A statement that does not end the transaction, at once, or None when it must be
        # `run` (`Connection.run_within`).
        self.run_within = connection.run_within

    async def run(self, sql: str, args: list[Any]) -> Outcome:
        """`sql`'s outcome, run where `sqlite_dbapi.Connection.run` puts it."""
        return await self._connection.run(sqlite_thread.run_statement, sql, args)

    def is_closed(self) -> bool:
        return self._connection.thread.closed
