"""What the run-end NOTIFY costs a commit on PostgreSQL, apart from everything else a run does.

Run: `.venv/bin/python benchmarks/run_end_notify.py` (`--database URL`, default
`WFC_BENCH_DATABASE_URL` or the local server's `postgres`; `--rounds N`). Reported, never
asserted. It makes a database of its own and drops it.

Four connections at once each end runs one commit at a time (`UPDATE runs SET status =
'COMPLETED'` on a table shaped like `runs`' status and id): a commit that NOTIFYs takes
a lock every notifying commit of the database shares, so four writers at once are where
it would show. Rounds of 2,000 ends alternate between the table with the trigger of
revision 0018 (`run_ends.TRIGGER`) and the same table without it; the figure is commits
per second, the median of the rounds, and what a notifying commit costs more. No one
LISTENs, as in a fleet where no process waits (a listener adds the delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wfc.runtime.adapters.sql.run_ends import NOTIFY_FUNCTION, TRIGGER

WRITERS = 4
ENDS = 2000


async def _round(dsn: str, table: str, round_no: int) -> float:
    """Commits per second of `ENDS` run ends by `WRITERS` connections on `table`."""
    setup = await asyncpg.connect(dsn)
    ids = [f"{table}-{round_no}-{n}" for n in range(ENDS)]
    await setup.executemany(
        f"INSERT INTO {table} (id, status) VALUES ($1, 'RUNNING')", [(i,) for i in ids]
    )
    await setup.close()
    writers = [await asyncpg.connect(dsn) for _ in range(WRITERS)]

    async def end(conn: asyncpg.Connection, mine: list[str]) -> None:
        for run_id in mine:
            await conn.execute(f"UPDATE {table} SET status = 'COMPLETED' WHERE id = $1", run_id)

    started = time.perf_counter()
    await asyncio.gather(*(end(w, ids[n::WRITERS]) for n, w in enumerate(writers)))
    elapsed = time.perf_counter() - started
    for writer in writers:
        await writer.close()
    return ENDS / elapsed


async def measure(admin: str, rounds: int) -> dict[str, list[float]]:
    name = f"wfc_bench_notify_{os.getpid()}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    dsn = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        db = await asyncpg.connect(dsn)
        for table in ("runs", "quiet"):
            await db.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, status text NOT NULL)")
        await db.execute(NOTIFY_FUNCTION)
        await db.execute(TRIGGER)  # on `runs` only
        await db.close()
        figures: dict[str, list[float]] = {"without the trigger": [], "with the trigger": []}
        for n in range(rounds):
            figures["without the trigger"].append(await _round(dsn, "quiet", n))
            figures["with the trigger"].append(await _round(dsn, "runs", n))
        return figures
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get(
        "WFC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--database", default=default)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    admin = make_url(args.database).set(drivername="postgresql")
    figures = asyncio.run(measure(admin.render_as_string(hide_password=False), args.rounds))
    print(
        f"| {WRITERS} connections ending runs, {args.rounds} rounds | commits/s (median) | rounds |"
    )
    print("|---|---|---|")
    for name, values in figures.items():
        rounds = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):,.0f} | {rounds} |")
    quiet = statistics.median(figures["without the trigger"])
    loud = statistics.median(figures["with the trigger"])
    print(f"\na notifying commit: {(1 / loud - 1 / quiet) * 1e6 * WRITERS:+.0f} µs per writer")


if __name__ == "__main__":
    main()
