"""The schema revision this wfc needs, and whether a database is at it, without Alembic.

Every `wfc` command that opens a database asks first whether its schema is the one
this version uses. Alembic answers by importing itself and parsing every migration
script, about 0.2 s of a `wfc run` that takes 1.4; a database already at the newest
revision (nearly always) needs only its one-row `alembic_version` table read and
compared with `HEAD_REVISION`. Anything else (an older, newer or new database) goes to
`migrate`, which imports Alembic to move or refuse it. A test keeps `HEAD_REVISION`
equal to the newest migration shipped.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from wfc.errors import WfcError

HEAD_REVISION = "0018"
"""The newest migration in `migrations/versions`: add one, and change this with it."""


class SchemaRevisionError(WfcError):
    """The database's schema revision is not one this version of wfc can use."""

    def __init__(self, url: str, found: str | None, head: str, fix: str) -> None:
        self.url = url
        self.found = found
        self.head = head
        super().__init__(
            f"database {url} is at schema revision {found or 'none'}, this wfc needs {head}: {fix}"
        )


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the database's schema is at `HEAD_REVISION` (False also for one that has
    no revision table: wfc never migrated it)."""
    async with engine.connect() as conn:
        try:
            found = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        except DBAPIError:
            return False
    return [row[0] for row in found] == [HEAD_REVISION]
