"""A new SQLite file gets the newest schema in one transaction, from a dump of the migrations.

The embedded database migrates itself when a command opens it. For a file that is
new, replaying every Alembic migration (importing Alembic, parsing each script, and
the table copies SQLite's batch mode makes to alter a table) took 55–120 ms: paid by a
newcomer's first `wfc run` and by every test that opens a fresh file. The result is
always the same schema, so it is kept here as SQL (`sqlite_schema.sql`, what
`sqlite3`'s own dump prints for a file the migrations made), and a new file gets it
in one `BEGIN IMMEDIATE` transaction, its revision stamped with it. A file that
already has tables (an older revision, or one another process just created) goes on
to the migrations as before.

A test builds a file with the migrations and compares its dump with `sqlite_schema.sql`:
adding a migration means running `python -m wfc.runtime.adapters.sql.sqlite_schema_dump`
to write the file again (`sqlite_schema_dump`).
"""

from __future__ import annotations

import sqlite3
from functools import cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

SCHEMA_FILE = Path(__file__).resolve().parent / "sqlite_schema.sql"


@cache
def statements() -> tuple[str, ...]:
    """The statements of `sqlite_schema.sql`, in order (a trigger's body stays whole)."""
    found: list[str] = []
    pending = ""
    for line in SCHEMA_FILE.read_text(encoding="utf-8").splitlines(keepends=True):
        if not pending and (not line.strip() or line.startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"{SCHEMA_FILE.name} ends inside a statement: {pending[:60]!r}")
    return tuple(found)


async def create_if_new(engine: AsyncEngine) -> bool:
    """Give a SQLite file with no tables the newest schema; False (and nothing written)
    when it has tables already. The check and the creation share one write transaction,
    so of two processes opening the same new file, one creates and the other migrates an
    up-to-date file: nothing."""
    async with engine.begin() as conn:
        tables = (await conn.execute(text("SELECT count(*) FROM sqlite_master"))).scalar_one()
        if tables:
            return False
        for statement in statements():
            await conn.exec_driver_sql(statement)
    return True
