"""Multi-row INSERT statements: which keys a row binds, and the statement with its VALUES
built once per set of keys and count of rows (`direct.insert_rows`, `direct.defer_rows`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.sql.base import Executable

from wfc.runtime.adapters.sql.compiled import MAX_COMPILED


def keys_bound(statement: Executable, rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """SQLite: the keys of `rows` an INSERT binds, in the first row's order. A column left
    out of an INSERT stores what its default gives, and for a nullable column with no
    default of its own (`null_by_default`) that is NULL, as a None bound to it stores:
    so such a key is left out where every row's value is None. Binding None costs
    `sqlite3` a failed adapter lookup (about 3,600 instructions, which formats and drops
    an AttributeError), and a SQLite `seq3` run bound 51 in the new stage, job and run
    rows. The statement for each set of keys is built once (`with_rows`); the kernel's
    rows leave a few sets of columns unset."""
    element: Any = statement
    left_out = null_by_default(element.table)
    first = rows[0]
    keys = [key for key, value in first.items() if value is not None or key not in left_out]
    if len(keys) < len(first) and len(rows) > 1:  # bound all the same if another row sets it
        keys = [key for key in first if key in keys or any(row[key] is not None for row in rows)]
    return tuple(keys)


_NULL_BY_DEFAULT: dict[Any, frozenset[str]] = {}


def null_by_default(table: Any) -> frozenset[str]:
    """The columns of `table` that a row left without a value stores as NULL: nullable
    (a primary key never is) and without a server default. (A default of SQLAlchemy's
    own, which the schema has none of, is not applied on this path either way: the
    compiled statement binds what the row gives, or None.)"""
    found = _NULL_BY_DEFAULT.get(table)
    if found is None:
        found = _NULL_BY_DEFAULT[table] = frozenset(
            column.key
            for column in table.columns
            if column.nullable and column.server_default is None
        )
    return found


def rows_statement(
    statement: Executable, rows: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None
) -> tuple[Executable, dict[str, Any]]:
    """A multi-row insert of `rows` (`with_rows`) and its parameters: row n's value of
    `key` as `r{n}_{key}`, then `extra`. Explicit VALUES, not SQLAlchemy's `column_keys`:
    that would also rewrite the SET of an UPDATE in the statement's CTEs."""
    keys = tuple(rows[0])
    statement_with_rows, names = with_rows(statement, keys, len(rows))
    return statement_with_rows, rows_params(names, keys, rows, extra)


def rows_params(
    names: tuple[tuple[str, ...], ...],
    keys: tuple[str, ...],
    rows: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    params = {
        name: row[key]
        for row_names, row in zip(names, rows, strict=True)
        for name, key in zip(row_names, keys, strict=True)
    }
    if extra:
        params |= extra
    return params


_WITH_ROWS: dict[
    tuple[int, tuple[str, ...], int],
    tuple[Executable, Executable, tuple[tuple[str, ...], ...]],
] = {}


def with_rows(
    statement: Executable, keys: tuple[str, ...], count: int
) -> tuple[Executable, tuple[tuple[str, ...], ...]]:
    """`statement` with `count` rows of VALUES, row n's value of `key` bound as
    `r{n}_{key}`: one statement, built once per row count, for a multi-row insert; and
    those names, row by row (made once with it: formatting them was a cost per row)."""
    entry = _WITH_ROWS.get((id(statement), keys, count))
    if entry is not None and entry[0] is statement:
        return entry[1], entry[2]
    element: Any = statement
    columns = element.table.c  # typed: a multi-row VALUES binds no column type of its own
    names = tuple(tuple(f"r{n}_{key}" for key in keys) for n in range(count))
    rows: list[dict[str, Any]] = [
        {
            key: bindparam(name, type_=columns[key].type)
            for key, name in zip(keys, row_names, strict=True)
        }
        for row_names in names
    ]
    derived: Executable = element.values(rows)
    if len(_WITH_ROWS) >= MAX_COMPILED:  # full: start again (`compiled.MAX_COMPILED`)
        _WITH_ROWS.clear()
    _WITH_ROWS[(id(statement), keys, count)] = (statement, derived, names)
    return derived, names
