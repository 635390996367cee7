"""A statement compiled once for a dialect, and the conversions of its values.

`direct` runs SQLAlchemy constructs built once (`rows.built_once`) on the
driver connection. This module compiles each of them once per dialect (the
same construct is `$1` for asyncpg, `?` for SQLite, and one process may use
both) and keeps, with the SQL, what turns a mapping of parameters into the
driver's argument list and the driver's rows into mappings: the bind and
result processors SQLAlchemy itself would apply, so values go in and come out
as they would through `conn.execute`.

Converting the parameters is most of the Python a statement costs on SQLite
(every instant and JSON value is text there), so `Compiled.args` walks a plan
made once per statement, and the conversions are one call each instead of
SQLAlchemy's two or three layers; `tests/integration/test_direct.py` checks
that both give the same values.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.types import JSON, TypeDecorator

from wfc.runtime.adapters.sql.schema import UtcDateTime

Row = Mapping[Any, Any]  # keyed by result column name (a RowMapping on the SQLAlchemy path)
Processor = Callable[[Any], Any]

# Entries kept at most, per cache. Most statements are built once, but a multi-row INSERT
# is one statement per set of keys and count of rows (`multi_row.with_rows`): a worker that
# meets many map chunk sizes and group widths may fill it. A full cache starts again empty,
# so the shapes in use are compiled once more, not at every call from then on.
MAX_COMPILED = 512
_REQUIRED = object()  # a parameter without a default: the caller must give it


class Compiled:
    """A statement compiled for a driver: its SQL, how to order and convert its parameters,
    and how to convert the columns it returns.

    `args` and `rows_of` are functions written out for the statement (`_arguments`,
    `_reader`) on their first use, and kept: then each statement's arguments, and each
    result's rows, cost one Python call, not a method that finds the function and calls
    it (two), nor a loop over the columns in the interpreter per row."""

    __slots__ = ("aligned", "args", "ends_transaction", "made", "plan", "result_processors", "sql")

    def __init__(
        self,
        sql: str,
        plan: tuple[tuple[str, Any, Processor | None], ...],
        result_processors: dict[str, Processor],
        *,
        ends_transaction: bool = False,
    ) -> None:
        self.sql = sql
        # One entry per positional parameter, in order: its name, its default (or
        # `_REQUIRED`) and its conversion (None: the value goes as it is).
        self.plan = plan
        self.result_processors = result_processors
        # SQLite: a reader of a result's rows (`_reader`), by the number of its columns.
        self.aligned: dict[int, Callable[[list[Any]], list[Row]]] = {}
        # `rows_args`'s function (`_arguments`), made on its first use. Not at compile time:
        # a multi-row INSERT of hundreds of rows is only ever bound by `rows_args`, and
        # writing out a function of its thousands of parameters costs as much again as
        # compiling it.
        self.made: dict[str, Callable[..., list[Any]]] = {}
        # Whether the statement ends a transaction (COMMIT, ROLLBACK): never one of ours.
        self.ends_transaction = ends_transaction
        # `args(params)`: the driver's arguments for `params`, converted as SQLAlchemy would
        # bind them (a `KeyError` for a parameter without a default that `params` lacks).
        # The first call writes the function out and puts it here in its own place.
        self.args: Callable[[Mapping[str, Any]], list[Any]] = self._first_args

    def _first_args(self, params: Mapping[str, Any]) -> list[Any]:
        made = self.args = _arguments(self.plan, {})
        return made(params)

    def rows_args(
        self,
        names: tuple[tuple[str, ...], ...],
        keys: tuple[str, ...],
        rows: Sequence[Mapping[str, Any]],
        extra: Mapping[str, Any] | None,
    ) -> list[Any]:
        """`args` of a multi-row INSERT whose row n binds its value of `keys[k]` as
        `names[n][k]` (`multi_row.with_rows`), read from `rows` themselves (and any other
        parameter from `extra`): no mapping of every row's values by name is built."""
        made = self.made.get("rows")
        if made is None:
            where = {
                name: (n, key)
                for n, row_names in enumerate(names)
                for name, key in zip(row_names, keys, strict=True)
            }
            made = self.made["rows"] = _arguments(self.plan, where)
        return made(extra or {}, rows)

    def row(self, record: Any) -> dict[str, Any]:
        processors = self.result_processors
        converted = {}
        for key, value in record.items():
            process = processors.get(key)
            converted[key] = value if process is None else process(value)
        return converted

    def rows_of(self, description: Sequence[Any], rows: list[Any]) -> list[Row]:
        """`sqlite3`'s rows (tuples, in `description`'s order) as converted mappings: one
        dict per row, built once (not a dict of the raw row, then a converted copy)."""
        read = self.aligned.get(len(description)) or self._align(description)
        return read(rows)

    def _align(self, description: Sequence[Any]) -> Callable[[list[Any]], list[Row]]:
        """The reader of rows described by `description`, kept for the next result. The
        statement's SQL is fixed, and with it the columns SQLite describes (our
        statements name every column they return), so one result's description serves
        every later one; they are told apart by their length all the same."""
        names = tuple(column[0] for column in description)
        read = _reader(names, tuple(self.result_processors.get(name) for name in names))
        self.aligned[len(names)] = read
        return read


def _arguments(
    plan: tuple[tuple[str, Any, Processor | None], ...], in_rows: Mapping[str, tuple[int, str]]
) -> Callable[..., list[Any]]:
    """`plan` as one Python function `(params, rows) -> arguments`, compiled once.

    Walking the plan per statement (a lookup, a test and an append per parameter, in
    the interpreter's loop) was the largest Python cost of a statement on SQLite: a
    stage's INSERTs bind 10 to 30 parameters each. The function made here is one list
    display of the same steps, written out: `p["name"]` for a parameter without a
    default (a `KeyError` when missing, as before), `g("name", default)` for one with,
    and `c3(v)` around the value for one with a conversion (None goes as it is). A
    parameter in `in_rows` (a multi-row INSERT's `r{n}_{key}`) is read as `r[n][key]`.
    Only the parameter names come from the statement, and they are written as Python
    string literals (`repr`); defaults and conversions are passed as the function's
    globals, never written into its text.
    """
    scope: dict[str, Any] = {}
    items = []
    for i, (name, default, process) in enumerate(plan):
        if name in in_rows:
            n, key = in_rows[name]
            value = f"r[{n}][{key!r}]"
        elif default is _REQUIRED:
            value = f"p[{name!r}]"
        else:
            scope[f"d{i}"] = default
            value = f"g({name!r}, d{i})"
        if process is None:
            items.append(value)
        else:
            scope[f"c{i}"] = process
            items.append(f"(None if (v := {value}) is None else c{i}(v))")
    source = "def arguments(p, r=None):\n    g = p.get\n    return [" + ", ".join(items) + "]\n"
    exec(compile(source, "<wfc compiled arguments>", "exec"), scope)
    made: Callable[..., list[Any]] = scope["arguments"]
    return made


def _reader(
    names: tuple[str, ...], processors: tuple[Processor | None, ...]
) -> Callable[[list[Any]], list[Row]]:
    """Rows of these columns (tuples) as mappings, by one Python function written out once
    per result shape: `[{"id": r[0], "output": c1(r[1]), …} for r in rows]`, each value
    converted by its column's processor (called for None too, as SQLAlchemy does), in
    place of a zip and a test per column of every row. As in `_arguments`, only the
    column names reach the text, as `repr` string literals; processors are globals."""
    scope: dict[str, Any] = {}
    items = []
    for i, (name, process) in enumerate(zip(names, processors, strict=True)):
        if process is None:
            items.append(f"{name!r}: r[{i}]")
        else:
            scope[f"c{i}"] = process
            items.append(f"{name!r}: c{i}(r[{i}])")
    source = "def read(rows):\n    return [{" + ", ".join(items) + "} for r in rows]\n"
    exec(compile(source, "<wfc compiled reader>", "exec"), scope)
    made: Callable[[list[Any]], list[Row]] = scope["read"]
    return made


# -- SQLite's conversions, without SQLAlchemy's layers ---------------------------------
#
# On SQLite every instant and JSON value is converted in Python on the way in and out, and
# SQLAlchemy's processors for them are two or three calls deep (`UtcDateTime` over the
# dialect's DATETIME, JSON's sentinel checks). These do the same work in one call; values
# of any other kind take SQLAlchemy's own processor.

_PLAIN_JSON = frozenset({dict, list, str, int, float, bool})
_NAIVE = "naive datetimes are not stored; use timezone-aware ones"

# `json.dumps(value)` with its defaults, without building its encoder again on each call:
# the C encoder `json.dumps` makes per call, made once. No circular check (`markers` None):
# a value that contains itself fails with RecursionError instead of ValueError; none of
# ours can, since each was decoded from JSON or built from such values.
_ENCODE = c_make_encoder(
    None, json.JSONEncoder().default, encode_basestring_ascii, None, ": ", ", ", False, False, True
)


# Two and three digits, zero-padded, by value: an instant's text is joined from these
# rather than formatted (`%02d` makes an int's text, then pads it, for each field).
_TWO = tuple(f"{n:02d}" for n in range(100))
_THREE = tuple(f"{n:03d}" for n in range(1000))
_INSTANT_TEXTS: dict[int, tuple[Any, str]] = {}
"""Instants converted lately, by `id`: each with its text. The kernel binds the same few
instants to many parameters of a transaction (a row's created, updated and started at; the
events' `occurred_at` repeat the rows' instants), but not one after the other: a SQLite
`seq3` run converted 51 instants, of which only 18 were the one converted just before
(the single instant kept until now), while 33 were formatted; of those, 12 had been
formatted earlier in the same transaction. Keyed by identity, as before (instants are
immutable, and the value kept is held here, so its `id` is not reused while it is): a
lookup costs an `id` and a dict `get`, no hash of the datetime. Each entry pairs an
instant with its own text in one tuple, so a thread converting at the same time (the
dashboard's loop) can never read one instant's text for another. Emptied when it holds
`_INSTANTS_KEPT` of them: a few transactions' worth."""
_INSTANTS_KEPT = 64


def _utc_text(value: Any) -> Any:
    """`UtcDateTime` bound for SQLite: the instant in UTC as DATETIME stores it."""
    kept = _INSTANT_TEXTS.get(id(value))
    if kept is not None and kept[0] is value:
        return kept[1]
    zone = value.tzinfo
    instant = value
    if zone is not UTC:
        if zone is None:
            raise ValueError(_NAIVE)
        instant = value.astimezone(UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff", DATETIME's storage format, joined from the fields'
    # digits looked up (`_TWO`, `_THREE`): about 5,000 instructions a value, against
    # 10,000 formatting them with `%04d-%02d-…` and 13,000 for
    # `isoformat(" ", "microseconds")[:26]` (a SQLite run formats about 33 instants).
    # Years run from 1 to 9999, so a year is two lookups of two digits.
    year, micro = instant.year, instant.microsecond
    text = (
        f"{_TWO[year // 100]}{_TWO[year % 100]}-{_TWO[instant.month]}-{_TWO[instant.day]} "
        f"{_TWO[instant.hour]}:{_TWO[instant.minute]}:{_TWO[instant.second]}"
        f".{_THREE[micro // 1000]}{_THREE[micro % 1000]}"
    )
    if len(_INSTANT_TEXTS) >= _INSTANTS_KEPT:
        _INSTANT_TEXTS.clear()
    _INSTANT_TEXTS[id(value)] = (value, text)
    return text


def _utc_from_text(value: Any) -> Any:
    """`UtcDateTime` read from SQLite: the stored text as an instant in UTC (None stays None).

    DATETIME's own text ("YYYY-MM-DD HH:MM:SS.ffffff", 26 characters) has no offset, and
    is read as UTC in one parse of it with "+00:00" added (the parser gives UTC itself for
    that offset): a naive parse and then `replace(tzinfo=UTC)` cost five times as much,
    the keyword call most of it (12,000 instructions an instant against 2,400; a `fan`
    run reads about 110). Any other text (another length, or an offset of its own, which
    fails that parse) is read and converted as before."""
    if value is None:
        return None
    if len(value) == 26:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value + "+00:00")
    read = datetime.fromisoformat(value)
    return read.replace(tzinfo=UTC) if read.tzinfo is None else read.astimezone(UTC)


def sqlite_bind(type_: Any, dialect: Dialect) -> Processor | None:
    """The bind processor for `type_` on SQLite: SQLAlchemy's, or the same in one call."""
    original: Processor | None = type_.dialect_impl(dialect).bind_processor(dialect)
    if original is None:
        return None
    if isinstance(type_, UtcDateTime):
        return _utc_text
    if isinstance(type_.dialect_impl(dialect), JSON):
        dumps: Processor | None = getattr(dialect, "_json_serializer", None)
        if dumps is not None:
            serialize = dumps

            def json_by(value: Any) -> Any:
                return serialize(value) if value.__class__ in _PLAIN_JSON else original(value)

            return json_by

        return _json_text_or(original)
    return original


def _json_text_or(original: Processor) -> Processor:
    """SQLAlchemy's JSON bind processor `original` (`json.dumps` with its defaults), in one
    call for a plain value; anything else (its NULL sentinels, say) goes to `original`."""

    def json_text(value: Any) -> Any:
        # `json.dumps(value)` by `_ENCODE`, written out here: one call per value.
        kind = value.__class__
        if kind is str:
            return encode_basestring_ascii(value)
        if kind in _PLAIN_JSON:
            return "".join(_ENCODE(value, 0))
        return original(value)

    return json_text


def sqlite_result(type_: Any, dialect: Dialect) -> Processor | None:
    """The result processor for `type_` on SQLite: SQLAlchemy's, or the same in one call."""
    original: Processor | None = type_.dialect_impl(dialect).result_processor(dialect, None)
    if original is None:
        return None
    if isinstance(type_, UtcDateTime):
        return _utc_from_text
    if isinstance(type_.dialect_impl(dialect), JSON):
        loads: Processor = getattr(dialect, "_json_deserializer", None) or json.loads

        def json_value(value: Any) -> Any:
            # (NULL is None, as SQLAlchemy's processor gives it: a stage row's unset
            # output and state columns, read back with every stage row.)
            if value is None:
                return None
            return loads(value) if value.__class__ is str else original(value)

        return json_value
    return original


# -- asyncpg's instants, without SQLAlchemy's layers -----------------------------------
#
# asyncpg takes and returns aware datetimes itself; `UtcDateTime` only puts them in UTC,
# through `TypeDecorator`'s processor and `process_bind_param` (two calls and a lookup of
# the dialect's name per instant, about forty instants a PostgreSQL run). These are the
# same steps in one call; an instant already in UTC is passed as it is, which is what
# `astimezone(UTC)` returns for it.


def _utc_instant(value: Any) -> Any:
    """`UtcDateTime` bound for asyncpg: the instant in UTC."""
    zone = value.tzinfo
    if zone is UTC:
        return value
    if zone is None:
        raise ValueError(_NAIVE)
    return value.astimezone(UTC)


def _utc_read(value: Any) -> Any:
    """`UtcDateTime` read from asyncpg: the instant in UTC (None stays None)."""
    if value is None:
        return None
    zone = value.tzinfo
    if zone is UTC:
        return value
    return value.replace(tzinfo=UTC) if zone is None else value.astimezone(UTC)


def asyncpg_bind(type_: Any, dialect: Dialect) -> Processor | None:
    """The bind processor for `type_` on asyncpg: SQLAlchemy's, or the same in one call."""
    impl = type_.dialect_impl(dialect)
    original: Processor | None = impl.bind_processor(dialect)
    if original is None:
        return None
    if isinstance(type_, UtcDateTime) and _plain_impl(type_, dialect):
        return _utc_instant
    if (
        isinstance(impl, JSON)
        and getattr(dialect, "_json_serializer", None) is None  # `json.dumps`, as it is
        and impl._str_impl.bind_processor(dialect) is None  # the text goes as it is
    ):
        # asyncpg's JSON and JSONB: `json.dumps(value)` through `JSON`'s processor, the
        # encoder's `encode` and `iterencode` (four calls, about 19 values a run).
        return _json_text_or(original)
    return original


def asyncpg_result(type_: Any, dialect: Dialect) -> Processor | None:
    """The result processor for `type_` on asyncpg: SQLAlchemy's, or the same in one call."""
    original: Processor | None = type_.dialect_impl(dialect).result_processor(dialect, None)
    if isinstance(type_, UtcDateTime) and _plain_impl(type_, dialect):
        return _utc_read
    return original


def _plain_impl(type_: Any, dialect: Dialect) -> bool:
    """Whether the driver's own type under `type_` converts nothing (asyncpg's timestamp):
    then `type_`'s own steps are all there is to do."""
    impl = type_.impl_instance.dialect_impl(dialect)
    return impl.bind_processor(dialect) is None and impl.result_processor(dialect, None) is None


# -- compiling, once per statement and dialect ------------------------------------------

_COMPILED: dict[tuple[int, str], tuple[Executable, Compiled | None]] = {}


def _compile(statement: Executable, dialect: Dialect) -> Compiled | None:
    """The statement for the dialect's driver, or None if it must go through SQLAlchemy."""
    element: Any = statement  # every Executable this module is given is a ClauseElement
    compiled: Any = element.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string:  # an expanding IN list: rendered per call
        return None
    names = tuple(compiled.positiontup or ())
    binds = [compiled.binds[name] for name in names]
    result_processors: dict[str, Processor] = {}
    decodes_builtins = dialect.driver == "asyncpg"
    sqlite = dialect.name == "sqlite"
    for key, column in getattr(statement, "exported_columns", {}).items():
        # asyncpg already returns Python values for the built-in types (JSON through the
        # codec SQLAlchemy installs on each connection); only the schema's own types,
        # `TypeDecorator`s, have a conversion of their own to apply. `sqlite3` returns
        # text and integers: every column gets the conversion SQLAlchemy would apply.
        if decodes_builtins and not isinstance(column.type, TypeDecorator):
            continue
        if sqlite:
            process = sqlite_result(column.type, dialect)
        elif decodes_builtins:
            process = asyncpg_result(column.type, dialect)
        else:
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            result_processors[str(key)] = process
    if sqlite:
        processors = [sqlite_bind(b.type, dialect) for b in binds]
    elif decodes_builtins:
        processors = [asyncpg_bind(b.type, dialect) for b in binds]
    else:
        processors = [b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds]
    plan = tuple(
        (name, _REQUIRED if bind.required else bind.effective_value, process)
        for name, bind, process in zip(names, binds, processors, strict=True)
    )
    return Compiled(
        sql=compiled.string,
        plan=plan,
        result_processors=result_processors,
        ends_transaction=compiled.string.lstrip()[:8].upper().startswith(_ENDS),
    )


_ENDS = ("COMMIT", "END", "ROLLBACK")


def compiled_for(statement: Executable, dialect: Dialect) -> Compiled | None:
    """`statement` compiled for `dialect` (once), or None if it must go through SQLAlchemy
    (an expanding `IN` list, rendered per call)."""
    key = (id(statement), dialect.name)
    entry = _COMPILED.get(key)
    if entry is not None and entry[0] is statement:
        return entry[1]
    compiled = _compile(statement, dialect)
    if len(_COMPILED) >= MAX_COMPILED:
        _COMPILED.clear()
    _COMPILED[key] = (statement, compiled)  # kept alive: ids stay valid
    return compiled
