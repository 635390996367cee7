"""Is this error the database's passing trouble, or a problem with the work itself?

A host that gets an exception from the kernel has two very different things to
do with it. A transient error (the connection dropped, the server is
restarting, a lock or serialization conflict, SQLite's "database is locked")
says nothing about the run: the transaction rolled back, so trying again later
is right, and failing the run for it would punish a run for an outage. Anything
else is deterministic, and trying again would only fail the same way.

One function decides, so the claim, the host's retries and the worker's
back-off all draw the line in the same place.
"""

from __future__ import annotations

import sys

# SQLSTATE classes and codes that describe the connection or the moment, not the statement:
# 08 connection exception, 40 transaction rollback (serialization failure, deadlock),
# 53 insufficient resources (too many connections, disk full), 57P0x the server shutting
# down or not yet accepting connections, 55P03 lock not available (lock_timeout),
# 57014 statement cancelled (statement_timeout).
_TRANSIENT_CLASSES = ("08", "40", "53")
_TRANSIENT_CODES = frozenset({"55P03", "57014", "57P01", "57P02", "57P03", "57P04", "57P05"})
_MAX_DEPTH = 8  # how far along `orig` / `__cause__` to look for the driver's error


def _sqlalchemy_says_transient(error: BaseException) -> bool:
    """SQLAlchemy's word on it: an operational or interface error, or a lost connection.
    Read from `sys.modules`, not imported: an error can only be SQLAlchemy's once SQLAlchemy
    is loaded, and importing it here would load it (a second) for every host and CLI
    command that never touches a database."""
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None:
        return False
    if isinstance(error, (exc.OperationalError, exc.InterfaceError)):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def is_transient(error: BaseException) -> bool:
    """True when `error` is the database's passing trouble (try again later), False when it
    is a problem with the work itself (trying again would fail the same way)."""
    for cause in _chain(error):
        if _sqlalchemy_says_transient(cause):
            return True
        if isinstance(cause, OSError):  # ConnectionError, TimeoutError, socket errors
            return True
        if _transient_sqlstate(cause):
            return True
        if _is_asyncpg_interface_error(cause):
            return True
    return False


def _chain(error: BaseException) -> list[BaseException]:
    """The error, the driver error SQLAlchemy wraps (`orig`) and what each was raised from."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo and len(seen) < _MAX_DEPTH:
        current = todo.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        orig = getattr(current, "orig", None)
        for linked in (orig, current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)
    return seen


def _transient_sqlstate(error: BaseException) -> bool:
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if not isinstance(code, str) or len(code) != 5:
        return False
    return code.startswith(_TRANSIENT_CLASSES) or code in _TRANSIENT_CODES


def _is_asyncpg_interface_error(error: BaseException) -> bool:
    """asyncpg's client-side errors ("connection is closed"), which carry no SQLSTATE (its
    server-side connection errors carry class 08). Matched by name: asyncpg is optional."""
    return any(
        cls.__name__ == "InterfaceError" and cls.__module__.startswith("asyncpg")
        for cls in type(error).__mro__
    )
