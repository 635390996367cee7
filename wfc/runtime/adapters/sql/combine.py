"""Several PostgreSQL statements as one: writes joined as data-modifying CTEs of one statement.

A write whose result nobody reads can wait for the next statement of its
transaction and travel with it (`direct.defer`), which saves it a round trip.
PostgreSQL runs every data-modifying CTE of a statement exactly once, to
completion, whether or not anything reads its output, so

    WITH wfc_part_0 AS (INSERT …), wfc_part_1 AS (UPDATE …) <the next statement>

does the writes and then answers as the next statement alone would. The
statements are SQLAlchemy constructs built once (`rows.built_once`), so the
joined statement is one too: each write becomes a CTE (`Select.add_cte`),
built once per combination of statements (`joined`) and compiled once by
`direct` like any other. Nothing here reads SQL text.

The safety rule, checked where parts are joined (`joined`): the parts of one
statement share one snapshot and run in no set order, so none may read what
another writes, nor write a row another writes. Held writes and the statement
they travel with must therefore touch disjoint tables (`Part.tables`, which
counts the tables a foreign key ties a table to: a write to one checks the
other). A predicted transaction (`predicted`) is the one exception: it knows
what its reads would say, so its parts need only write disjoint tables
(`Part.writes`); its own statement checks the rest.

Each part's parameters are renamed `wfc_<n>_<name>` in the joined statement
(`bound`): two parts may bind the same name (`now`, `record_id`) to different
values. A part's own CTEs (`jobs`' `handing_on`) are hoisted by SQLAlchemy to
the top level, where PostgreSQL requires data-modifying ones; their names must
not clash (`Part.ctes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, bindparam, func, literal_column, select
from sqlalchemy.sql import Executable, visitors
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import CTE, HasCTE
from sqlalchemy.sql.util import find_tables

from wfc.runtime.adapters.sql.schema import metadata

_MAX_CACHED = 1024  # statements are built once, so their combinations repeat


class UnsafeJoin(ValueError):
    """Parts asked to run in one statement that could see or overwrite each other's rows."""


def _related(table: str) -> frozenset[str]:
    """`table` and the tables its foreign keys tie it to either way: a write to one runs
    checks (or cascades) on the others."""
    found = {table}
    for other in metadata.tables.values():
        for key in other.foreign_keys:
            if other.name == table:
                found.add(key.column.table.name)
            if key.column.table.name == table:
                found.add(other.name)
    return frozenset(found)


_RELATED = {name: _related(name) for name in metadata.tables}


@dataclass(frozen=True, slots=True, eq=False)
class Part:
    """A write that may travel as a CTE of another statement: the construct, the tables it
    touches (with those their foreign keys tie them to), those it writes, and the names of
    its own CTEs. Compared by identity, like the statement it wraps."""

    statement: Executable
    tables: frozenset[str]
    writes: frozenset[str]
    ctes: frozenset[str]
    # An INSERT without ON CONFLICT and without CTEs of its own: it only adds rows, so it
    # cannot write a row another part writes (a row that is there already fails it).
    adds_only: bool = False


# Keyed by the statements themselves (hashed by identity), which keeps them alive.
_PARTS: dict[Executable, Part | None] = {}


def part_of(statement: Executable) -> Part | None:
    """`statement` as a part, or None if it cannot travel with others: it is not an
    INSERT, UPDATE or DELETE construct, or it binds parameters its construct does not
    hold (an INSERT without `.values()`, whose columns are decided when it runs)."""
    if statement in _PARTS:
        return _PARTS[statement]
    part = _part_of(statement)
    if len(_PARTS) < _MAX_CACHED:
        _PARTS[statement] = part
    return part


def _part_of(statement: Executable) -> Part | None:
    if not isinstance(statement, UpdateBase):
        return None
    element: Any = statement
    # Every parameter must be one `as_cte` renames: not one the compiler makes up for an
    # INSERT without `.values()`, nor an expanding IN list.
    binds = renamed(statement, "wfc_check_").compile().binds.values()
    if any(
        bind.expanding or not (bind.unique or bind.key.startswith("wfc_check_")) for bind in binds
    ):
        return None
    touched = _names(find_tables(element, include_crud=True, check_columns=True))
    written = {element.table.name}
    ctes = set()
    for node in visitors.iterate(element):
        if isinstance(node, CTE):
            ctes.add(node.name)
            if isinstance(node.element, UpdateBase):
                table: Any = node.element.table
                written.add(table.name)
    return Part(
        statement=statement,
        tables=frozenset().union(*(_RELATED.get(name, {name}) for name in touched)),
        writes=frozenset(written),
        ctes=frozenset(ctes),
        adds_only=_adds_only(element, ctes),
    )


def _adds_only(element: Any, ctes: set[str]) -> bool:
    """An INSERT that can only add rows: no ON CONFLICT clause, no CTE of its own, and
    its rows given as VALUES (an `INSERT … SELECT` may read its own table, which inside
    one statement would not see a sibling insert's rows)."""
    return (
        isinstance(element, Insert)
        and element._post_values_clause is None
        and element.select is None
        and not ctes
    )


def _names(tables: Sequence[Any]) -> set[str]:
    """The names of `tables` (`find_tables` also yields None: a column of no table)."""
    return {table.name for table in tables if table is not None}


def check_disjoint(parts: Sequence[Part], *, predicted: bool = False) -> None:
    """Raise `UnsafeJoin` unless `parts` may run as one statement: no two touch a table in
    common (with `predicted`, write one in common, unless both only add rows to it:
    `Part.adds_only`), nor name a CTE alike."""
    seen_tables: set[str] = set()
    added: set[str] = set()  # (predicted) tables written by inserts alone so far
    seen_ctes: set[str] = set()
    for part in parts:
        tables = part.writes if predicted else part.tables
        shared = (seen_tables - added) if predicted and part.adds_only else seen_tables
        if not shared.isdisjoint(tables) or not seen_ctes.isdisjoint(part.ctes):
            raise UnsafeJoin(f"{sorted(tables)} meets {sorted(seen_tables)} in one statement")
        if predicted and part.adds_only:
            added |= tables - seen_tables
        else:
            added -= tables
        seen_tables |= tables
        seen_ctes |= part.ctes


def prefix(number: int) -> str:
    """The prefix of part `number`'s parameters in a joined statement."""
    return f"wfc_{number}_"


def bound(parts: Sequence[tuple[Part, Mapping[str, Any]]], first: int = 0) -> dict[str, Any]:
    """The parameters of `parts` (each with its own) as a joined statement names them,
    numbering the parts from `first`."""
    params: dict[str, Any] = {}
    for number, (_, own) in enumerate(parts, start=first):
        head = prefix(number)
        params.update({head + name: value for name, value in own.items()})
    return params


def as_cte(part: Part, number: int) -> CTE:
    """Part `number` as the CTE `wfc_part_<number>`, its parameters renamed (`prefix`)."""
    cte: CTE = renamed(part.statement, prefix(number)).cte(f"wfc_part_{number}")
    return cte


def renamed(statement: Executable, head: str) -> Any:
    """A copy of `statement` whose parameters are named `head + <name>` (anonymous ones,
    such as a literal's, are numbered apart by the compiler anyway)."""

    def rename(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and not (element.unique or element.expanding):
            if element.required:
                return bindparam(head + element.key, type_=element.type, required=True)
            return bindparam(head + element.key, element.value, type_=element.type)
        return None

    source: Any = statement
    return visitors.replacement_traverse(source, {}, rename)


def rows_of(ctes: Sequence[CTE]) -> Any:
    """`1 / (<rows of the first> * <rows of the second> * …)`: fails the statement with a
    division by zero unless each of `ctes` (RETURNING something) changed a row."""
    counts = [select(func.count()).select_from(cte).scalar_subquery() for cte in ctes]
    product: Any = counts[0]
    for count in counts[1:]:
        product = product * count
    return literal_column("1", Integer) // product


_JOINED: dict[tuple[Any, ...], Executable] = {}  # keyed by the parts and carrier themselves


def joined(
    parts: Sequence[Part], carrier: Executable | None = None, expected: Sequence[int] = ()
) -> Executable:
    """One statement doing every part's writes (parameters renamed: `bound`), then
    answering as `carrier` would (its parameters keep their names), or, without one, as
    `SELECT 1`; or, when parts are `expected` to change a row (they have RETURNING),
    failing unless each did (`rows_of`). Built once per combination; raises `UnsafeJoin`
    when the parts (the carrier with them) break the safety rule."""
    key = (tuple(parts), carrier, tuple(expected))
    built = _JOINED.get(key)
    if built is not None:
        return built
    carrier_part = None if carrier is None else _as_carrier(carrier)
    check_disjoint([*parts, *([carrier_part] if carrier_part is not None else [])])
    ctes = [as_cte(part, number) for number, part in enumerate(parts)]
    if expected:
        assert carrier is None, "a carrier's answer would hide the check"
        answer: Any = select(rows_of([ctes[n] for n in expected]))
    else:
        answer = carrier if carrier is not None else select(literal_column("1"))
    statement: Executable = answer.add_cte(*ctes)
    if len(_JOINED) < _MAX_CACHED:
        _JOINED[key] = statement
    return statement


def carries(statement: Executable) -> bool:
    """Whether writes may travel with `statement` as CTEs: a construct that takes them
    (a SELECT, INSERT, UPDATE or DELETE; not text)."""
    return isinstance(statement, HasCTE)


_CARRIERS: dict[Executable, Part] = {}


def _as_carrier(carrier: Executable) -> Part:
    """What a carrier touches, as a part: a SELECT reads the tables it names."""
    part = _CARRIERS.get(carrier)
    if part is None:
        part = part_of(carrier) or _read_part(carrier)
        if len(_CARRIERS) < _MAX_CACHED:
            _CARRIERS[carrier] = part
    return part


def _read_part(statement: Executable) -> Part:
    element: Any = statement
    touched = _names(find_tables(element, check_columns=True))
    ctes = {node.name for node in visitors.iterate(element) if isinstance(node, CTE)}
    return Part(
        statement=statement,
        tables=frozenset().union(*(_RELATED.get(name, {name}) for name in touched)),
        writes=frozenset(),
        ctes=frozenset(ctes),
    )


def carrier_part(statement: Executable) -> Part | None:
    """What `statement` touches, as `joined` checks it, or None if it cannot carry."""
    return _as_carrier(statement) if carries(statement) else None


@dataclass(slots=True)
class Held:
    """Writes waiting for their transaction's next statement, each with its parameters, and
    what they touch: a part joins them only if it touches none of it.

    `begin` is the transaction's BEGIN while it waits too: it goes first, just before
    the first statement that must reach the server. Held writes are always one
    statement's worth (a part that does not fit sends them first), so a transaction
    that never needed its BEGIN sends them as one statement, atomic on its own.
    """

    begin: str | None = None
    parts: list[tuple[Part, Mapping[str, Any]]] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    ctes: set[str] = field(default_factory=set)
    # A transaction sent whole at its commit (`direct.predict`): every write is held, in
    # one statement with its reads' predictions checked; `expected` are the positions of
    # parts that must change a row (their RETURNING is counted).
    predicting: bool = False
    expected: list[int] = field(default_factory=list)
    writes: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)  # (predicting) written by inserts alone

    def take_begin(self) -> str | None:
        """The BEGIN to send now, once; None when it was sent (or never waited)."""
        begin, self.begin = self.begin, None
        return begin

    def admits(self, part: Part) -> bool:
        """Whether `part` may run in one statement with every held write."""
        return self.tables.isdisjoint(part.tables) and self.ctes.isdisjoint(part.ctes)

    def admits_predicted(self, part: Part) -> bool:
        """Whether `part` may join a predicting transaction's one statement: it writes no
        table another part writes (so no row twice), unless both only add rows to it
        (a group's new stage rows: a row already there fails the statement), and its CTE
        names are new."""
        written = (self.writes - self.added) if part.adds_only else self.writes
        return written.isdisjoint(part.writes) and self.ctes.isdisjoint(part.ctes)

    def add(self, part: Part, params: Mapping[str, Any], *, expect_row: bool = False) -> None:
        if expect_row:
            self.expected.append(len(self.parts))
        self.parts.append((part, params))
        self.tables |= part.tables
        self.ctes |= part.ctes
        if self.predicting and part.adds_only:
            self.added |= part.writes - self.writes
        else:
            self.added -= part.writes
        self.writes |= part.writes

    def statement(self) -> tuple[Executable, dict[str, Any]]:
        """The held writes as one statement of their own, and its parameters; they are no
        longer held."""
        expected = self.expected
        parts = self._take()
        return joined([part for part, _ in parts], None, expected), bound(parts)

    def carried_by(
        self, statement: Executable, params: Mapping[str, Any]
    ) -> tuple[Executable, dict[str, Any]] | None:
        """`statement` (with `params`) carrying the held writes, which are then no longer
        held; or None when they cannot travel with it."""
        carrier = carrier_part(statement)
        if carrier is None or not self.admits(carrier) or self.expected:
            return None
        parts = self._take()
        return joined([part for part, _ in parts], statement), {**params, **bound(parts)}

    def _take(self) -> list[tuple[Part, Mapping[str, Any]]]:
        parts, self.parts = self.parts, []
        self.tables.clear()
        self.ctes.clear()
        self.writes.clear()
        self.added.clear()
        self.expected = []
        return parts

    def take_predicted(self) -> tuple[list[tuple[Part, Mapping[str, Any]]], list[int]]:
        """A predicting transaction's held writes, and which must change a row."""
        expected = self.expected
        return self._take(), expected
