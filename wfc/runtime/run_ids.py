"""Run ids as people type them: the whole id, or a unique prefix of it.

A run id is a UUID, 36 characters no one types; `wfc runs show 3f2a9c1e` should
do. Every command that takes a run id (and the dashboard's run page) resolves
it here, so they all accept the same prefixes and refuse the same way:

- an exact id always names its run, even when it is also the start of others
  (`run-1` and `run-10`), and whatever its length;
- otherwise the text is a prefix, and it must be at least `MIN_PREFIX`
  characters: a shorter one would name a run only while the database is nearly
  empty, and `wfc runs cancel a` should not cancel whichever run starts with
  an `a`;
- a prefix that several runs start with is refused, naming a few of them
  (newest first) and how many match, so the user can type more of the one
  they mean.

It costs two reads at most: the exact id by its primary key, then the runs
starting with the prefix as `Persistence.list_runs(id_prefix=…)` finds them
(`LIKE 'prefix%'`, the prefix's `%` and `_` taken literally), stopping after
`SHOWN + 1` rows.
"""

from __future__ import annotations

from wfc.errors import WfcError
from wfc.runtime.ports import Persistence
from wfc.runtime.storable import unstorable_part

MIN_PREFIX = 4
"""The shortest prefix that may name a run (an exact id of any length always does)."""

SHOWN = 5
"""How many candidates an ambiguous prefix names."""


class RunIdError(WfcError):
    """A typed run id that names no run, or more than one. `exit_code` is what the CLI
    exits with: 2 when the text cannot name one run (bad input), 1 when none is there."""

    exit_code = 1


class NoSuchRunError(RunIdError):
    """No run has this id or starts with this prefix."""


class AmbiguousRunIdError(RunIdError):
    """Several runs start with this prefix (or it is too short to be a prefix)."""

    exit_code = 2

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


async def resolve_run_id(db: Persistence, typed: str) -> str:
    """The id of the one run `typed` names: its id, or a unique prefix of it at least
    `MIN_PREFIX` characters long. Raises `NoSuchRunError` or `AmbiguousRunIdError`."""
    if unstorable_part(typed) is not None:  # a NUL: no id has one, and PostgreSQL would fail
        raise NoSuchRunError(f"no run has the id {typed!r}")
    if typed and await db.get_run(typed) is not None:
        return typed
    if len(typed) < MIN_PREFIX:
        raise AmbiguousRunIdError(
            f"no run has the id {typed!r}, and a prefix needs at least {MIN_PREFIX} "
            "characters to name a run",
            [],
        )
    found = await db.list_runs(id_prefix=typed, limit=SHOWN + 1)
    # SQLite's LIKE ignores case where the others do not: keep what starts with it exactly.
    ids = [run.id for run in found if run.id.startswith(typed)]
    if not ids:
        raise NoSuchRunError(f"no run starts with {typed!r}")
    if len(ids) == 1:
        return ids[0]
    count = f"{len(ids)}" if len(ids) <= SHOWN else f"more than {SHOWN}"
    shown = ", ".join(ids[:SHOWN])
    raise AmbiguousRunIdError(
        f"{count} runs start with {typed!r} ({shown}{', …' if len(ids) > SHOWN else ''}): "
        "type more of the id",
        ids[:SHOWN],
    )
