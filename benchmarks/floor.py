"""The floor: how fast a hand-written durable queue runs wfc's benchmark shapes.

Run: `.venv/bin/python benchmarks/floor.py` (PostgreSQL at
`WFC_BENCH_DATABASE_URL`, default the local server; `--database sqlite` for one of them).
Reported, never asserted.

wfc's runs/s mean little alone: this says what the same machine does at best
with the same durability, so a figure can be read as a fraction of the floor.
Each queue is the least a durable step engine must do, written by hand:

- `sqlite`: the stdlib `sqlite3` on a file in WAL mode (`synchronous=NORMAL`,
  as wfc's default), one connection, statements prepared once by the
  driver's statement cache. A step is two committed transactions: a claim
  (`BEGIN IMMEDIATE`, take the oldest queued job, mark it running) and a
  completion (store the step's output, mark the job done, enqueue the next
  step or steps, and finish the run after its last one);
- `postgres`: asyncpg with `FOR UPDATE SKIP LOCKED`, the same two transactions,
  each its own round trips, on one connection.

The shapes are wfc's (`shapes.py`): `seq3` (a → b → c) and `fan` (a → [b1..b4]
→ c, the join counted down on the run's row). runs/s = runs / wall time from
the first creation to the last completion, all runs created at once in one
transaction (creation is not what is measured). One process, one loop: the
floor is what one core does with the database's own commit cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ADMIN_URL = os.environ.get(
    "WFC_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)

# What follows each step: the steps it enqueues, and how many it joins into ("c" waits for 4).
NEXT: dict[str, dict[str, list[str]]] = {
    "seq3": {"a": ["b"], "b": ["c"], "c": []},
    "fan": {
        "a": ["b1", "b2", "b3", "b4"],
        "b1": ["c"],
        "b2": ["c"],
        "b3": ["c"],
        "b4": ["c"],
        "c": [],
    },
}
JOIN = {"seq3": 1, "fan": 4}

SCHEMA = [
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, shape TEXT NOT NULL, status TEXT NOT NULL,"
    " waiting INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, completed REAL)",
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),"
    " step TEXT NOT NULL, status TEXT NOT NULL, output TEXT)",
    "CREATE INDEX jobs_queued ON jobs (status, id)",
]


# -- SQLite, stdlib driver ----------------------------------------------------------------


def sqlite_floor(path: Path, shape: str, runs: int) -> dict[str, float]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    for sql in SCHEMA:
        db.execute(sql)
    db.execute("BEGIN IMMEDIATE")
    created = time.perf_counter()
    for _ in range(runs):
        run_id = db.execute(
            "INSERT INTO runs (shape, status, created) VALUES (?, 'RUNNING', ?)", (shape, created)
        ).lastrowid
        db.execute("INSERT INTO jobs (run_id, step, status) VALUES (?, 'a', 'QUEUED')", (run_id,))
    db.execute("COMMIT")
    started_cpu = time.process_time()
    steps = 0
    while True:
        db.execute("BEGIN IMMEDIATE")
        job = db.execute(
            "SELECT id, run_id, step FROM jobs WHERE status = 'QUEUED' ORDER BY id LIMIT 1"
        ).fetchone()
        if job is None:
            db.execute("COMMIT")
            break
        db.execute("UPDATE jobs SET status = 'RUNNING' WHERE id = ?", (job[0],))
        db.execute("COMMIT")
        _complete_sqlite(db, shape, job)
        steps += 1
    finished = db.execute(
        "SELECT max(completed), count(*) FROM runs WHERE status = 'DONE'"
    ).fetchone()
    assert finished[1] == runs, "a floor run did not finish"
    cpu = time.process_time() - started_cpu
    db.close()
    return {"runs_per_s": runs / (finished[0] - created), "cpu_ms_per_run": cpu * 1000 / runs}


def _complete_sqlite(db: sqlite3.Connection, shape: str, job: tuple[Any, ...]) -> None:
    job_id, run_id, step = job
    output = json.dumps({"n": 1})  # the step's work: trivial, as the benchmark's stages are
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE jobs SET status = 'DONE', output = ? WHERE id = ?", (output, job_id))
    following = NEXT[shape][step]
    if not following:
        db.execute(
            "UPDATE runs SET status = 'DONE', completed = ? WHERE id = ?",
            (time.perf_counter(), run_id),
        )
    elif len(following) > 1:  # a fan out: the join waits for every branch
        db.execute("UPDATE runs SET waiting = ? WHERE id = ?", (len(following), run_id))
        db.executemany(
            "INSERT INTO jobs (run_id, step, status) VALUES (?, ?, 'QUEUED')",
            [(run_id, s) for s in following],
        )
    elif JOIN[shape] > 1 and following[0] == "c":
        (left,) = db.execute(
            "UPDATE runs SET waiting = waiting - 1 WHERE id = ? RETURNING waiting", (run_id,)
        ).fetchone()
        if left == 0:
            db.execute(
                "INSERT INTO jobs (run_id, step, status) VALUES (?, 'c', 'QUEUED')", (run_id,)
            )
    else:
        db.execute(
            "INSERT INTO jobs (run_id, step, status) VALUES (?, ?, 'QUEUED')",
            (run_id, following[0]),
        )
    db.execute("COMMIT")


# -- PostgreSQL, asyncpg with SKIP LOCKED ---------------------------------------------------

PG_SCHEMA = [
    "CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, shape TEXT NOT NULL, status TEXT NOT NULL,"
    " waiting INTEGER NOT NULL DEFAULT 0, created DOUBLE PRECISION NOT NULL,"
    " completed DOUBLE PRECISION)",
    "CREATE TABLE jobs (id BIGSERIAL PRIMARY KEY, run_id BIGINT NOT NULL REFERENCES runs(id),"
    " step TEXT NOT NULL, status TEXT NOT NULL, output JSONB)",
    "CREATE INDEX jobs_queued ON jobs (id) WHERE status = 'QUEUED'",
]


async def postgres_floor(url: str, shape: str, runs: int) -> dict[str, float]:
    import asyncpg  # the benchmark's own import: only this case needs it

    name = f"wfc_floor_{os.getpid()}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name}")
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        db = await asyncpg.connect(url, database=name)
        for sql in PG_SCHEMA:
            await db.execute(sql)
        created = time.perf_counter()
        async with db.transaction():
            ids = await db.fetch(
                "INSERT INTO runs (shape, status, created) SELECT $1, 'RUNNING', $2"
                " FROM generate_series(1, $3) RETURNING id",
                shape,
                created,
                runs,
            )
            await db.executemany(
                "INSERT INTO jobs (run_id, step, status) VALUES ($1, 'a', 'QUEUED')",
                [(r["id"],) for r in ids],
            )
        started_cpu = time.process_time()
        while True:
            job = await db.fetchrow(
                "UPDATE jobs SET status = 'RUNNING' WHERE id = (SELECT id FROM jobs"
                " WHERE status = 'QUEUED' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING id, run_id, step"
            )
            if job is None:
                break
            await _complete_postgres(db, shape, job)
        finished = await db.fetchrow(
            "SELECT max(completed) AS last, count(*) AS n FROM runs WHERE status = 'DONE'"
        )
        assert finished["n"] == runs, "a floor run did not finish"
        cpu = time.process_time() - started_cpu
        await db.close()
        return {
            "runs_per_s": runs / (finished["last"] - created),
            "cpu_ms_per_run": cpu * 1000 / runs,
        }
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _complete_postgres(db: Any, shape: str, job: Any) -> None:
    run_id, step = job["run_id"], job["step"]
    async with db.transaction():
        await db.execute(
            "UPDATE jobs SET status = 'DONE', output = $1 WHERE id = $2",
            json.dumps({"n": 1}),
            job["id"],
        )
        following = NEXT[shape][step]
        if not following:
            await db.execute(
                "UPDATE runs SET status = 'DONE', completed = $1 WHERE id = $2",
                time.perf_counter(),
                run_id,
            )
        elif len(following) > 1:
            await db.execute("UPDATE runs SET waiting = $1 WHERE id = $2", len(following), run_id)
            await db.executemany(
                "INSERT INTO jobs (run_id, step, status) VALUES ($1, $2, 'QUEUED')",
                [(run_id, s) for s in following],
            )
        elif JOIN[shape] > 1 and following[0] == "c":
            left = await db.fetchval(
                "UPDATE runs SET waiting = waiting - 1 WHERE id = $1 RETURNING waiting", run_id
            )
            if left == 0:
                await db.execute(
                    "INSERT INTO jobs (run_id, step, status) VALUES ($1, 'c', 'QUEUED')", run_id
                )
        else:
            await db.execute(
                "INSERT INTO jobs (run_id, step, status) VALUES ($1, $2, 'QUEUED')",
                run_id,
                following[0],
            )


def measure(
    shapes: Sequence[str], databases: Sequence[str] | None, tmp: Path, runs: int = 2000
) -> list[dict[str, Any]]:
    """The floor of each shape on each database (both when `databases` is None), as rows
    of `runtime.py`'s table."""
    rows: list[dict[str, Any]] = []
    plain = ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    for shape in shapes:
        if databases is None or "sqlite" in databases:
            measured = sqlite_floor(tmp / f"floor-{shape}.db", shape, runs)
            rows.append(
                {"engine": "floor (sqlite3)", "database": "sqlite", "shape": shape} | measured
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
        if databases is None or "postgres" in databases:
            measured = asyncio.run(postgres_floor(plain, shape, runs))
            engine = "floor (asyncpg SKIP LOCKED)"
            rows.append({"engine": engine, "database": "postgres", "shape": shape} | measured)
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs per shape")
    parser.add_argument("--database", choices=("sqlite", "postgres"), action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(("seq3", "fan"), args.database, Path(tmp), args.runs)
    print("| floor | db | shape | runs/s | CPU per run (this process) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['engine']} | {r['database']} | {r['shape']} | {r['runs_per_s']:.0f} "
            f"| {r['cpu_ms_per_run']:.2f} ms |"
        )


if __name__ == "__main__":
    main()
