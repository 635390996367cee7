"""SQLite: a run's lock held back, to be written with the run's next write.

A stage's outcome transaction, on the path where the caller knows the run as
its stage started (`Persistence.lock_run_and_update_stage(expect=…)`), used to
write the run three times on SQLite: the lock (`version + 1` at the version
expected, the run RUNNING), the run's completion or totals (`update_run`), and
the outbox counter (`last_sequence + n`, `outbox.append`). Each is a statement
with its Python around it (binding, the driver call, the record), about a
tenth of a millisecond apiece on the event loop's thread.

Under `BEGIN IMMEDIATE` the transaction holds the file's write lock from its
first statement: nothing else writes until it commits, so when in the
transaction the run's row is checked and written changes nothing anyone can
see. The lock is therefore held here (`HeldLock`): `update_run`s of the run
are folded into it, answered from what they set (as PostgreSQL's predicted
transaction answers them), and the whole is written as one statement with the
outbox counter's advance when the run's events are appended, or before any
other call of the transaction that could read or write the run, or at its
commit. That statement checks the version expected and RUNNING, as the lock
did; if it changes no row, `ExpectationFailed`, and the caller's transaction,
rolled back whole, runs again reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wfc.errors import ExpectationFailed
from wfc.runtime.adapters.sql import direct
from wfc.runtime.adapters.sql.rows import built_once, column_values, prefixed
from wfc.runtime.adapters.sql.runs import held_run_lock
from wfc.runtime.adapters.sql.schema import runs
from wfc.runtime.copies import changed
from wfc.runtime.records import RunChanges, RunRecord


@dataclass(slots=True)
class HeldLock:
    """The run's lock, not written yet, and the run's writes folded into it."""

    run: RunRecord  # as it will be once written
    read_version: int
    now: datetime
    changes: dict[str, Any] = field(default_factory=dict)  # column values
    bumps: int = 1

    @classmethod
    def of(cls, run: RunRecord, now: datetime) -> HeldLock:
        """The lock of `run`, as last read (RUNNING, at its version)."""
        locked = changed(run, {"version": run.version + 1, "updated_at": now})
        return cls(run=locked, read_version=run.version, now=now)

    def covers(self, run_id: str, expected_version: int | None) -> bool:
        """Whether an `update_run` of `run_id` at `expected_version` can be folded in."""
        return run_id == self.run.id and expected_version in (None, self.run.version)

    def fold(self, changes: RunChanges, now: datetime) -> RunRecord:
        """`Persistence.update_run` of the locked run, answered as it will be written."""
        self.changes |= column_values(dict(changes))
        self.bumps += 1
        self.now = now
        self.run = changed(
            self.run, {**changes, "version": self.run.version + 1, "updated_at": now}
        )
        return self.run

    async def write(self, conn: Any, events: int = 0) -> int:
        """Write the lock with its folded changes, advancing the outbox counter by
        `events`: the run's `last_sequence` after it. `ExpectationFailed` if the run is not
        at the version read, or not RUNNING: nothing of the transaction may commit then."""
        columns = tuple(self.changes)
        statement = built_once(("sqlite_held_lock", *columns), lambda: _lock(columns))
        params = prefixed(self.changes, "u_") | {
            "run_id": self.run.id,
            "read_version": self.read_version,
            "bumps": self.bumps,
            "now": self.now,
            "count": events,
        }
        row = await direct.first(conn, statement, params)
        if row is None:
            raise ExpectationFailed("the run is not at the version expected, or not RUNNING")
        return int(row["last_sequence"])


def _lock(columns: tuple[str, ...]) -> Any:
    return held_run_lock(columns, "u_", "count").returning(runs.c.last_sequence)
