"""Row ↔ record conversion and the dialect-specific INSERT, shared by the aggregate modules."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sqlalchemy import Row, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from wfc.runtime.records import Status

RecordT = TypeVar("RecordT")


def to_record(cls: type[RecordT], row: Row[Any]) -> RecordT:
    """The record of `cls` built from a row whose columns include all its fields."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in row._mapping.items() if k in fields}
    if "status" in values:
        values["status"] = Status(values["status"])
    return cls(**values)


def to_values(record: object) -> dict[str, Any]:
    """A record's fields as column values (enums stored by value)."""
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}  # type: ignore[arg-type]
    return {k: (v.value if isinstance(v, Status) else v) for k, v in values.items()}


def column_values(changes: dict[str, Any]) -> dict[str, Any]:
    """A `*Changes` mapping as column values."""
    return {k: (v.value if isinstance(v, Status) else v) for k, v in changes.items()}


def upsert_insert(conn: AsyncConnection, table: Table) -> Any:
    """`INSERT` supporting `ON CONFLICT` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
