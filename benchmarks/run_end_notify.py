"""What the run-end NOTIFY costs a commit on PostgreSQL, apart from everything else a run does.

Run: `.venv/bin/python benchmarks/run_end_notify.py` (`--database URL`, default
`WFC_BENCH_DATABASE_URL` or the local server's `postgres`; `--rounds N`). Reported, never
asserted. It makes a database of its own and drops it.

Four connections at once each end runs one commit at a time (`UPDATE ... SET status =
'COMPLETED'` on tables shaped like `runs`' status and id): a commit that NOTIFYs takes a
lock every notifying commit of the database shares, so four writers at once are where it
would show. Rounds of 2,000 ends go in turn through four ways, and the figure is commits
per second, the median of the rounds, and what an ending commit costs more than one
without a trigger:

- without the trigger;
- a trigger that does nothing (what any trigger costs);
- revision 0018's trigger, which notifies every end (no one listening);
- the current trigger (`run_ends.TRIGGER`, revision 0019) with no listener registered;
- the current trigger with one listener registered and LISTENing (as a process waiting
  for a run holds one), which receives every notification.

Before the rounds, what one call of each trigger costs the server, apart from the commit:
`EXPLAIN ANALYZE`'s trigger time for one UPDATE that ends 20,000 rows, rolled back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wfc.runtime.adapters.sql.run_ends import (
    CHANNEL,
    LISTENERS_TABLE,
    NOTIFY_FUNCTION,
    REGISTER,
    TRIGGER,
    UNREGISTER,
)

WRITERS = 4
ENDS = 2000

# Revision 0018's function, which notifies every end, on a table of its own.
EVERY_END_FUNCTION = """
CREATE FUNCTION wfc_notify_every_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wfc_run_ended', NEW.id);
  RETURN NULL;
END $$
"""
EVERY_END_TRIGGER = (
    TRIGGER.replace("wfc_runs_ended", "every_end")
    .replace("ON runs", "ON every_end")
    .replace("wfc_notify_run_ended()", "wfc_notify_every_end()")
)

# The least any trigger costs: one that does nothing, on a table of its own.
NOTHING_FUNCTION = """
CREATE FUNCTION wfc_do_nothing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RETURN NULL;
END $$
"""
NOTHING_TRIGGER = (
    TRIGGER.replace("wfc_runs_ended", "nothing")
    .replace("ON runs", "ON nothing")
    .replace("wfc_notify_run_ended()", "wfc_do_nothing()")
)

WAYS = {
    "without the trigger": "quiet",
    "a trigger that does nothing": "nothing",
    "0018: every end notified": "every_end",
    "0019: no listener": "runs",
    "0019: one listener": "runs",
}


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
        for table in ("runs", "every_end", "nothing", "quiet"):
            await db.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, status text NOT NULL)")
        for statement in (
            LISTENERS_TABLE,
            NOTIFY_FUNCTION,
            TRIGGER,  # on `runs`
            EVERY_END_FUNCTION,
            EVERY_END_TRIGGER,
            NOTHING_FUNCTION,
            NOTHING_TRIGGER,
        ):
            await db.execute(statement)
        print("server time of one trigger call, one UPDATE ending 20,000 rows (rolled back):")
        for table in ("nothing", "runs", "every_end"):
            print(f"  {table}: {await _trigger_call_us(db, table):.2f} µs")
        await db.close()
        figures: dict[str, list[float]] = {way: [] for way in WAYS}
        heard = [0]
        for n in range(rounds):
            for way, table in WAYS.items():
                if way.endswith("one listener"):
                    listener = await _listening(dsn, heard)
                    figures[way].append(await _round(dsn, table, n * 10 + 1))
                    await listener.execute(UNREGISTER)
                    await listener.close()
                else:
                    figures[way].append(await _round(dsn, table, n * 10))
        print(f"notifications the listener received: {heard[0]:,}")
        return figures
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


async def _trigger_call_us(db: asyncpg.Connection, table: str) -> float:
    """Microseconds a call of `table`'s trigger takes, as `EXPLAIN ANALYZE` reports it for
    one UPDATE that ends 20,000 rows: the trigger's own CPU, apart from any commit."""
    transaction = db.transaction()
    await transaction.start()
    try:
        await db.execute(
            f"INSERT INTO {table} (id, status) "
            "SELECT 'timed-' || n, 'RUNNING' FROM generate_series(1, 20000) n"
        )
        plan = await db.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) UPDATE {table} SET status = 'COMPLETED'"
        )
    finally:
        await transaction.rollback()
    [trigger] = json.loads(plan)[0]["Triggers"]
    return float(trigger["Time"]) * 1000 / int(trigger["Calls"])


async def _listening(dsn: str, heard: list[int]) -> asyncpg.Connection:
    """A connection registered as a run-end listener and LISTENing, as `listen` holds one."""
    listener = await asyncpg.connect(dsn)
    await listener.execute(REGISTER)

    def deliver(*_args: object) -> None:
        heard[0] += 1

    await listener.add_listener(CHANNEL, deliver)
    return listener


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
    for name, values in figures.items():
        if name != "without the trigger":
            extra = (1 / statistics.median(values) - 1 / quiet) * 1e6 * WRITERS
            print(f"{name}: {extra:+.0f} µs an ending commit per writer")


if __name__ == "__main__":
    main()
