"""Several PostgreSQL statements as one: data-modifying CTEs joined into a single statement.

A write whose result nobody reads can wait for the next statement of its
transaction and travel with it (`direct.defer`), which saves it a round trip.
PostgreSQL runs every data-modifying CTE of a statement exactly once, to
completion, whether or not anything reads its output, so
`WITH a AS (INSERT …), b AS (UPDATE …) <statement>` does the writes and then
answers as `<statement>` alone would. Two limits make that safe, and
`direct` keeps to both:

- The parts of one statement share one snapshot and run in no set order, so
  they must touch disjoint tables: none may read what another writes, nor
  write the same row. `Part.tables` says what a statement touches, foreign
  keys counting as touching the tables at their other end.
- A CTE may not nest a data-modifying `WITH`, so a part's own CTEs are hoisted
  to the top level (`split`), and CTE names must not clash.

Everything here works on the SQL text SQLAlchemy compiled for asyncpg, with no I/O:
parameters are `$1 … $n`, renumbered when parts are joined (`shift`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from wfc.runtime.adapters.sql.schema import metadata

_CTE_HEAD = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s+AS\s+(?:(?:NOT\s+)?MATERIALIZED\s+)?\(", re.IGNORECASE
)
_COMMA = re.compile(r"\s*,")
_PARAM = re.compile(r"\$(\d+)")
# A name after FROM, JOIN, INTO or UPDATE (but not ON CONFLICT's `DO UPDATE SET`).
_TABLE = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(?!SET\b)([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE
)
# The table a data statement writes: after INSERT INTO, UPDATE (not `DO UPDATE SET`), DELETE.
_WRITTEN = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(?!SET\b)([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE
)
_DATA = ("WITH ", "INSERT ", "UPDATE ", "DELETE ", "SELECT ")


@dataclass(frozen=True, slots=True)
class Part:
    """One statement taken apart: its CTEs (`name AS (…)`, in order), their names, the
    statement after them, the tables it touches — every table (or CTE) name it
    mentions, and the tables their foreign keys tie them to — and those it writes."""

    ctes: tuple[str, ...]
    names: frozenset[str]
    body: str
    tables: frozenset[str]
    writes: frozenset[str]


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


_PARTS: dict[str, Part | None] = {}
_MAX_CACHED = 1024  # statements are built once, so their texts repeat


def split(sql: str) -> Part | None:
    """`sql` taken apart, or None if it cannot travel with others (not a data statement,
    or a shape this module does not read: a recursive CTE, say)."""
    if sql in _PARTS:
        return _PARTS[sql]
    part = _split(sql)
    if len(_PARTS) < _MAX_CACHED:
        _PARTS[sql] = part
    return part


def _split(sql: str) -> Part | None:
    text = sql.strip()
    if not text.upper().startswith(_DATA):
        return None
    unquoted = _unquoted(text)
    named = {name.lower() for name in _TABLE.findall(unquoted)}
    tables = frozenset().union(*(_RELATED.get(name, {name}) for name in named))
    writes = frozenset(name.lower() for name in _WRITTEN.findall(unquoted))
    if not text.upper().startswith("WITH "):
        return Part(ctes=(), names=frozenset(), body=text, tables=tables, writes=writes)
    ctes, names, at = [], [], len("WITH ")
    while True:
        head = _CTE_HEAD.match(text, at)
        if head is None:
            return None
        end = _closing(text, head.end() - 1)
        if end is None:
            return None
        ctes.append(text[head.start(1) : end + 1])
        names.append(head.group(1).lower())
        comma = _COMMA.match(text, end + 1)
        if comma is None:
            body = text[end + 1 :].strip()
            return Part(
                ctes=tuple(ctes), names=frozenset(names), body=body, tables=tables, writes=writes
            )
        at = comma.end()


def _segments(sql: str) -> Iterator[tuple[str, bool]]:
    """`sql` cut into runs of text outside and inside quotes ('…' and "…")."""
    start, at, quote = 0, 0, ""
    while at < len(sql):
        char = sql[at]
        if quote:
            if char == quote:
                if at + 1 < len(sql) and sql[at + 1] == quote:  # '' or "" inside quotes
                    at += 2
                    continue
                yield sql[start : at + 1], True
                start, quote = at + 1, ""
        elif char in "'\"":
            if at > start:
                yield sql[start:at], False
            start, quote = at, char
        at += 1
    if start < len(sql):
        yield sql[start:], bool(quote)


def _unquoted(sql: str) -> str:
    return " ".join(segment for segment, quoted in _segments(sql) if not quoted)


def _closing(sql: str, opening: int) -> int | None:
    """The index of the parenthesis that closes the one at `opening`."""
    depth, at = 0, opening
    for segment, quoted in _segments(sql[opening:]):
        if not quoted:
            for offset, char in enumerate(segment):
                if char == "(":
                    depth += 1
                elif char == ")":
                    depth -= 1
                    if depth == 0:
                        return at + offset
        at += len(segment)
    return None


def shift(sql: str, offset: int) -> str:
    """`sql` with each parameter `$n` renumbered `$(n + offset)`."""
    if not offset:
        return sql
    return "".join(
        segment if quoted else _PARAM.sub(lambda found: f"${int(found.group(1)) + offset}", segment)
        for segment, quoted in _segments(sql)
    )


_JOINED: dict[tuple[tuple[Part, ...], Part | None, tuple[int, ...]], str] = {}


def joined(
    parts: Sequence[tuple[Part, int]],
    carrier: tuple[Part, int] | None = None,
    expected: Sequence[int] = (),
) -> str:
    """One statement doing every part's writes (each with its number of parameters, bound
    in that order), then answering as `carrier` would — whose parameters come first — or,
    without one, as `SELECT 1`; or, when parts are `expected` to change a row (they have
    RETURNING), failing unless each did: `SELECT 1 / (<rows of each>)`. The parts' CTE
    names must be distinct (`Part.names`)."""
    key = (tuple(part for part, _ in parts), carrier[0] if carrier else None, tuple(expected))
    sql = _JOINED.get(key)
    if sql is not None:
        return sql
    offset = carrier[1] if carrier else 0
    ctes: list[str] = []
    for number, (part, count) in enumerate(parts):
        ctes += [shift(cte, offset) for cte in part.ctes]
        ctes.append(f"wfc_part_{number} AS ({shift(part.body, offset)})")
        offset += count
    if carrier is not None:
        ctes += carrier[0].ctes
    answer = carrier[0].body if carrier else "SELECT 1"
    if expected:
        assert carrier is None, "a carrier's answer would hide the check"
        rows = " * ".join(f"(SELECT count(*) FROM wfc_part_{n})" for n in expected)
        answer = f"SELECT 1 / ({rows})"
    sql = f"WITH {', '.join(ctes)} {answer}"
    if len(_JOINED) < _MAX_CACHED:
        _JOINED[key] = sql
    return sql


@dataclass(slots=True)
class Held:
    """Writes waiting for their transaction's next statement, each with its arguments, and
    what they touch: a part joins them only if it touches none of it.

    `begin` is the transaction's BEGIN while it waits too: it goes first, just before
    the first statement that must reach the server. Held writes are always one
    statement's worth (a part that does not fit sends them first), so a transaction
    that never needed its BEGIN sends them as one statement, atomic on its own.
    """

    begin: str | None = None
    parts: list[tuple[Part, list[Any]]] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    # A transaction sent whole at its commit (`direct.predict`): every write is held, in
    # one statement with its reads' predictions checked; `expected` are the positions of
    # parts that must change a row (their RETURNING is counted).
    predicting: bool = False
    expected: list[int] = field(default_factory=list)
    writes: set[str] = field(default_factory=set)

    def take_begin(self) -> str | None:
        """The BEGIN to send now, once; None when it was sent (or never waited)."""
        begin, self.begin = self.begin, None
        return begin

    def admits(self, part: Part) -> bool:
        """Whether `part` may run in one statement with every held write."""
        return self.tables.isdisjoint(part.tables) and self.names.isdisjoint(part.names)

    def admits_predicted(self, part: Part) -> bool:
        """Whether `part` may join a predicting transaction's one statement: it writes no
        table another part writes (so no row twice) and its CTE names are new."""
        return self.writes.isdisjoint(part.writes) and self.names.isdisjoint(part.names)

    def add(self, part: Part, args: list[Any], *, expect_row: bool = False) -> None:
        if expect_row:
            self.expected.append(len(self.parts))
        self.parts.append((part, args))
        self.tables |= part.tables
        self.names |= part.names
        self.writes |= part.writes

    def statement(self) -> tuple[str, list[Any]]:
        """The held writes as one statement of their own, and its arguments; they are no
        longer held."""
        expected = self.expected
        parts = self._take()
        return joined([(part, len(args)) for part, args in parts], None, expected), _args(parts)

    def carried_by(self, sql: str, args: list[Any]) -> tuple[str, list[Any]] | None:
        """`sql` (with `args`) carrying the held writes, which are then no longer held; or
        None when they cannot travel with it."""
        carrier = split(sql)
        if carrier is None or not self.admits(carrier) or self.expected:
            return None
        parts = self._take()
        sql = joined([(part, len(more)) for part, more in parts], (carrier, len(args)))
        return sql, [*args, *_args(parts)]

    def _take(self) -> list[tuple[Part, list[Any]]]:
        parts, self.parts = self.parts, []
        self.tables.clear()
        self.names.clear()
        self.writes.clear()
        self.expected = []
        return parts

    def take_predicted(self) -> tuple[list[tuple[Part, list[Any]]], list[int]]:
        """A predicting transaction's held writes, and which must change a row."""
        expected = self.expected
        return self._take(), expected


def _args(parts: list[tuple[Part, list[Any]]]) -> list[Any]:
    return [arg for _, args in parts for arg in args]
