"""Row ↔ record conversion, the dialect-specific INSERT and statements built once, shared by
the aggregate modules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Row,
    Table,
    and_,
    bindparam,
    case,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from wfc.errors import RecordNotFoundError, StaleVersionError
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.drivers import dialect_name
from wfc.runtime.record_builders import slot_twin, slots_are_fields
from wfc.runtime.records import Status

RecordT = TypeVar("RecordT")
StatementT = TypeVar("StatementT")

_BUILT: dict[Hashable, Any] = {}


def to_record(cls: type[RecordT], row: Row[Any] | Mapping[str, Any], prefix: str = "") -> RecordT:
    """The record of `cls` built from a row (or a `direct` row mapping) whose columns
    include all its fields, named `prefix + field` (a join labels its columns so)."""
    mapping: Mapping[Any, Any] = row._mapping if isinstance(row, Row) else row
    record_of = _RECORD_OF.get((cls, prefix))
    if record_of is None:
        record_of = _RECORD_OF[cls, prefix] = _record_function(cls, prefix)
    made: RecordT = record_of(mapping)
    return made


_STATUS_BY_VALUE: dict[str, Status] = {status.value: status for status in Status}
_RECORD_OF: dict[tuple[type, str], Callable[[Mapping[Any, Any]], Any]] = {}


def _record_function(cls: type, prefix: str) -> Callable[[Mapping[Any, Any]], Any]:
    """`to_record` for one record class and prefix, written out once: each field read by
    its column's name (`m["stages_id"]`: a `KeyError` for a column the row lacks, as
    before), the status as a `Status`, and stored in a plain object of the record's
    layout given its class after (`record_builders.slot_twin`, as `copies.changed`
    copies records). A dict of the values, then `cls(**values)`, cost about twice as
    much: the dict, its unpacking into keywords, and `__init__` (a SQLite `seq3` run
    reads four records, a `fan` run more). A class whose layout is not its slots alone
    (`slots_are_fields`) is called with the values as keywords. Only the class's own
    field names and the prefix reach the text, as string literals and attribute names.

    The status is looked up by its value (`_STATUS_BY_VALUE`): calling the enum costs
    about 8,000 instructions through `EnumType.__call__`; a value that is none of its
    members' still goes to the call, which raises as before."""
    names = _field_names(cls)
    scope: dict[str, Any] = {"S": Status, "by_value": _STATUS_BY_VALUE, "kind": cls}
    values = {
        name: f"by_value.get(v := m[{prefix + name!r}]) or S(v)"
        if name == "status"
        else f"m[{prefix + name!r}]"
        for name in names
    }
    if slots_are_fields(cls):
        scope |= {"new": object.__new__, "twin": slot_twin(cls)}
        lines = [f"    made.{name} = {value}" for name, value in values.items()]
        body = ["    made = new(twin)", *lines, "    made.__class__ = kind", "    return made"]
    else:
        body = ["    return kind(" + ", ".join(f"{n}={v}" for n, v in values.items()) + ")"]
    exec("\n".join(["def record_of(m):", *body]), scope)  # from the class's field names
    made: Callable[[Mapping[Any, Any]], Any] = scope["record_of"]
    return made


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_values(record: object) -> dict[str, Any]:
    """A record's fields as column values (enums stored by value)."""
    kind = type(record)
    values_of = _VALUES_OF.get(kind)
    if values_of is None:
        values_of = _VALUES_OF[kind] = _values_function(_field_names(kind))
    return values_of(record)


_VALUES_OF: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _values_function(names: tuple[str, ...]) -> Callable[[Any], dict[str, Any]]:
    """`to_values` for a record class with fields `names`, written out as one dict display:
    `{"id": r.id, "status": v._value_ if (v := r.status).__class__ is S else v, …}`. Walking
    the fields (a `getattr` and an `isinstance` each, two dict comprehensions) cost about
    sixty builtin calls for a stage row, inserted once per stage. (`is Status` is
    `isinstance`: an enum with members has no subclasses; `_value_` is `value`, read as
    the member's attribute, not through `value`'s property written in Python.) Only the
    class's own field names reach the text, as string literals and attribute names."""
    items = [f"{name!r}: (v._value_ if (v := r.{name}).__class__ is S else v)" for name in names]
    source = "def values_of(r):\n    return {" + ", ".join(items) + "}\n"
    scope: dict[str, Any] = {"S": Status}
    exec(compile(source, "<wfc record values>", "exec"), scope)
    made: Callable[[Any], dict[str, Any]] = scope["values_of"]
    return made


def column_values(changes: dict[str, Any]) -> dict[str, Any]:
    """A `*Changes` mapping as column values."""
    # (`__class__ is Status`, not `isinstance`: an enum with members has no subclasses.
    # `_value_`, not `value`: the same text, an attribute of the member; `value` is a
    # property written in Python, about 1,300 instructions more a read.)
    return {k: (v._value_ if v.__class__ is Status else v) for k, v in changes.items()}


def upsert_insert(conn: AsyncConnection, table: Table) -> Any:
    """`INSERT` supporting `ON CONFLICT` for the connection's dialect."""
    if dialect_name(conn) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def one_of(column: ColumnElement[Any], name: str, count: int) -> ColumnElement[bool]:
    """`column` equals one of `count` values bound as `<name>_0` … (an OR of equalities,
    not an `IN` list, which `direct` cannot send as compiled)."""
    return or_(*(column == bindparam(f"{name}_{n}") for n in range(count)))


def one_of_params(name: str, values: Sequence[str]) -> dict[str, str]:
    """The parameters `one_of` binds."""
    return {f"{name}_{n}": value for n, value in enumerate(values)}


def built_once(key: Hashable, build: Callable[[], StatementT]) -> StatementT:
    """The statement `build` makes, made on the first call for `key` and reused after.

    Building a statement object (and its cache key) costs more CPU than running it on a
    local server, so the hot statements are built once per shape, with bound parameters
    in place of values. The number of shapes is small and fixed (one per combination of
    changed columns the kernel writes), so the cache stays small.
    """
    statement = _BUILT.get(key)
    if statement is None:
        statement = _BUILT[key] = build()
    return statement


def params_for(columns: Iterable[str], prefix: str) -> dict[str, BindParameter[Any]]:
    """A bound parameter named `prefix + column` for each column, as `.values()` takes them
    (a parameter may not be named like a column the statement sets)."""
    return {column: bindparam(prefix + column) for column in columns}


def prefixed(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Column values keyed by their `params_for` parameter names."""
    return {prefix + column: value for column, value in values.items()}


@dataclass(frozen=True, slots=True)
class Guard:
    """A further condition on an update (with its parameters): when it fails, nothing
    changes. `name` tells the statements built once apart, one per kind of condition."""

    name: str
    condition: Callable[[], ColumnElement[bool]]
    params: dict[str, Any]


async def update_versioned(
    conn: AsyncConnection,
    table: Table,
    entity: str,
    record_id: str,
    changes: dict[str, Any],
    now: datetime,
    expected_version: int | None,
    guard: Guard | None = None,
) -> Mapping[str, Any] | None:
    """Apply `changes` to the row `record_id` of `table`, bumping its version — only if the
    version is `expected_version`, when given, and the `guard` holds. Raises
    `StaleVersionError` when the version differs, `RecordNotFoundError` when there is no
    such row; returns None (nothing written) when only the guard failed.

    A guarded write on PostgreSQL says why it wrote nothing in the same statement
    (`_with_version`), so a refused write is the last statement of its transaction: a
    guard that locks the run (`stages._run_is_running`) then holds it only until the
    caller rolls back, not through a further round trip. SQLite cannot put an UPDATE in
    a CTE; it reads the version after (a local read, under the file's write lock). That
    read on PostgreSQL sees the statement's snapshot: were a caller to pass both a guard and
    an expected version, a version moved by a commit the statement waited for would read
    as the guard's refusal (None), not `StaleVersionError`. No caller passes both."""
    updates = column_values(changes)
    checked = expected_version is not None
    told = guard is not None and dialect_name(conn) == "postgresql"

    def build() -> Any:
        condition = table.c.id == bindparam("record_id")
        if checked:
            condition = and_(condition, table.c.version == bindparam("expected_version"))
        if guard is not None:
            condition = and_(condition, guard.condition())
        statement = (
            update(table)
            .where(condition)
            .values(
                {
                    **params_for(updates, "u_"),
                    "version": table.c.version + 1,
                    "updated_at": bindparam("now"),
                }
            )
            .returning(*table.c)
        )
        return _with_version(table, statement) if told else statement

    shape = ("update_versioned", table.name, checked, guard and guard.name, told, *updates)
    statement = built_once(shape, build)
    params = prefixed(updates, "u_") | {
        "record_id": record_id,
        "now": now,
        "expected_version": expected_version,
    }
    if guard is not None:
        params |= guard.params
    row = await direct.first(conn, statement, params)
    if told:
        assert row is not None  # `_with_version` answers one row, written or not
        if row["id"] is not None:
            return row
        actual = row["wfc_actual_version"]
    elif row is not None:
        return row
    else:
        version = select(table.c.version).where(table.c.id == record_id)
        actual = (await conn.execute(version)).scalar()
    if actual is None:
        raise RecordNotFoundError(entity, record_id)
    if expected_version is not None and actual != expected_version:
        raise StaleVersionError(entity, record_id, expected_version, actual)
    return None


def _with_version(table: Table, written: Any) -> Any:
    """PostgreSQL: `written` (an UPDATE … RETURNING) as a CTE, answered by one row either
    way: the row written, or NULLs and the row's version as it is (NULL: no such row), in
    `wfc_actual_version`, read only when nothing was written."""
    cte = written.cte("wfc_written")
    one = select(literal_column("1").label("wfc_one")).subquery("wfc_one")
    actual = select(table.c.version).where(table.c.id == bindparam("record_id"))
    return select(
        *cte.c,
        case((cte.c.id.is_(None), actual.scalar_subquery())).label("wfc_actual_version"),
    ).select_from(one.outerjoin(cte, true()))
