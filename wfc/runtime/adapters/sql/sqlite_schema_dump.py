"""Writes `sqlite_schema.sql` from the migrations, and dumps a file to compare with it.

A developer tool and the snapshot test's reference, not used at run time: run
`python -m wfc.runtime.adapters.sql.sqlite_schema_dump` after adding a migration.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from pathlib import Path

from wfc.runtime.adapters.sql.sqlite_schema import SCHEMA_FILE, statements

_TRANSACTION_LINES = ("BEGIN TRANSACTION;", "COMMIT;")


def dump(path: Path) -> str:
    """The schema and rows of the SQLite file at `path` as `sqlite_schema.sql` keeps them."""
    with sqlite3.connect(path) as connection:
        lines = [
            _constraints_sorted(line)
            for line in connection.iterdump()
            if line not in _TRANSACTION_LINES
        ]
    connection.close()
    return "".join(f"{line}\n" for line in lines)


_TABLE_CONSTRAINTS = ("CONSTRAINT ", "PRIMARY KEY", "UNIQUE", "FOREIGN KEY", "CHECK")


def _constraints_sorted(statement: str) -> str:
    """A `CREATE TABLE` with its table constraints in name order: the migrations' batch
    mode copies a table with its constraints in an order that moves with the
    interpreter's hash seed, and the order means nothing to SQLite."""
    head, _, rest = statement.partition("(\n")
    if not head.startswith("CREATE TABLE") or not rest.endswith("\n);"):
        return statement
    items = [line.strip().removesuffix(",").rstrip() for line in rest[:-3].split("\n")]
    columns = [item for item in items if not item.startswith(_TABLE_CONSTRAINTS)]
    constraints = sorted(item for item in items if item.startswith(_TABLE_CONSTRAINTS))
    body = ", \n".join(f"\t{item}" for item in columns + constraints)
    return f"{head}(\n{body}\n);"


def dump_of_migrations() -> str:
    """The dump of a new file brought to the newest revision by the Alembic migrations."""
    from wfc.runtime.adapters.sql import migrate
    from wfc.runtime.adapters.sql.engine import create_engine

    async def migrated(path: Path) -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "migrated.db"
        asyncio.run(migrated(path))
        return dump(path)


_HEADER = (
    "-- The newest wfc schema for a new SQLite file, dumped from a file the migrations made.\n"
    "-- Written by `python -m wfc.runtime.adapters.sql.sqlite_schema_dump`; do not edit by hand.\n"
)


def snapshot_text() -> str:
    """What `sqlite_schema.sql` must hold for the migrations this package ships."""
    return _HEADER + dump_of_migrations()


def main() -> None:
    """Write `sqlite_schema.sql` again from the migrations (after adding one)."""
    SCHEMA_FILE.write_text(snapshot_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE} ({len(statements.__wrapped__())} statements)", file=sys.stderr)


if __name__ == "__main__":
    main()
