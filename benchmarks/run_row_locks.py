"""Where a burst's time goes on PostgreSQL: lock waits, open transactions, statements per run.

Run: `.venv/bin/python benchmarks/run_row_locks.py --shape fan --runs 200` (PostgreSQL
at `WFC_BENCH_DATABASE_URL`, as `benchmarks/runtime.py`). Four workers (`--workers`)
of 8 slots serve a fresh database; after a first burst, a second is measured while
`pg_stat_activity` and `pg_locks` are sampled every 3 ms: what each backend is doing
(waiting on a lock, and on which statement; idle in a transaction, after which
statement) and which locks are waited for. Then, per run: transactions committed and
rolled back, tuples written per table (`pg_stat_user_tables`), and the statements the
workers sent (`direct.watching`, both bursts), most frequent first. Reported, never
asserted; the counts move far less than the timings on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import asyncpg  # noqa: E402
import runtime  # noqa: E402
from shapes import workflows  # noqa: E402

from wfc.runtime.adapters.sql import PoolOptions, direct, open_storage  # noqa: E402
from wfc.runtime.hosts import WorkerHost, make_kernel  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402

SAMPLE_EVERY_S = 0.003
_ACTIVITY = """SELECT state, wait_event_type, wait_event, left(query, 70) AS q
FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"""
_WAITED = """SELECT l.locktype, l.mode, c.relname FROM pg_locks l
LEFT JOIN pg_class c ON c.oid = l.relation
WHERE NOT l.granted AND l.pid IN (SELECT pid FROM pg_stat_activity WHERE datname = $1)"""


async def worker(url: str, worker_id: str) -> None:
    """`bench_worker.py`'s worker, printing the statements it sent on exit."""
    storage = open_storage(url, worker_id=worker_id, pool=PoolOptions.for_slots(8))
    await storage.prepare()
    host = WorkerHost(
        make_kernel(storage, workflows()),
        worker_id=worker_id,
        concurrency=8,
        job_poll_interval=timedelta(seconds=1),
        wakeups=storage.wakeups,
    )
    with direct.watching(storage.engine) as sent:
        ready = asyncio.get_running_loop().call_later(0.2, lambda: print("ready", flush=True))
        stats = await host.serve()
        ready.cancel()
    await storage.close()
    kinds = collections.Counter(" ".join(sql.split())[:110] for sql in sent)
    print(json.dumps({"stats": asdict(stats), "kinds": kinds.most_common(40)}), flush=True)


async def sample(database: str, stop: asyncio.Event, seen: collections.Counter[Any]) -> int:
    conn = await asyncpg.connect(runtime.ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    samples = 0
    while not stop.is_set():
        samples += 1
        for row in await conn.fetch(_ACTIVITY, database):
            seen[(row["state"], row["wait_event_type"], row["wait_event"], row["q"])] += 1
        for row in await conn.fetch(_WAITED, database):
            seen[("waiting for", row["locktype"], row["mode"], row["relname"])] += 1
        await asyncio.sleep(SAMPLE_EVERY_S)
    await conn.close()
    return samples


async def counters(url: str) -> dict[str, float]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    found = dict(
        await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    )
    for row in await conn.fetch("SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables"):
        found[f"{row['relname']} inserted"] = row["n_tup_ins"]
        found[f"{row['relname']} updated"] = row["n_tup_upd"]
    await conn.close()
    return found


async def drive(url: str, database: str, args: argparse.Namespace, pids: list[int]) -> None:
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())
    await runtime._burst(kernel, storage, args.shape, args.runs, "first", pids)
    await asyncio.sleep(1.0)  # the statistics collector catches up
    before = await counters(url)
    stop, seen = asyncio.Event(), collections.Counter[Any]()
    sampler = asyncio.create_task(sample(database, stop, seen))
    rate, cpu = await runtime._burst(kernel, storage, args.shape, args.runs, "burst", pids)
    stop.set()
    samples = await sampler
    await asyncio.sleep(1.0)
    after = await counters(url)
    await storage.close()
    print(f"{rate:.1f} runs/s; CPU per run (ms): {cpu}")
    for name, value in after.items():
        if value != before.get(name, 0):
            print(f"  {(value - before.get(name, 0)) / args.runs:7.2f} {name} per run")
    print(f"backends per sample ({samples} samples), most frequent first:")
    for key, count in seen.most_common(args.top):
        print(f"  {count / samples:6.2f}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("seq3", "fan"), default="fan")
    parser.add_argument("--runs", type=int, default=200, help="runs per burst")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--top", type=int, default=25, help="lines of each listing")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # url, id: be one
    args = parser.parse_args()
    if args.worker:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(worker(*args.worker))
        return
    database = f"wfc_run_row_locks_{args.shape}_{os.getpid()}"
    with runtime.postgres(database) as url:
        asyncio.run(runtime._migrate(url))
        this = [sys.executable, __file__, "--worker", url]
        procs = [runtime.start([*this, f"w{n}"]) for n in range(args.workers)]
        try:
            asyncio.run(drive(url, database, args, [p.pid for p in procs]))
        finally:
            exits = [json.loads(line) for line in runtime.stop_all(procs)]
    kinds: collections.Counter[str] = collections.Counter()
    for exit_ in exits:
        kinds.update(dict(exit_["kinds"]))
    print(f"statements per run (both bursts): {sum(kinds.values()) / (2 * args.runs):.1f}")
    for sql, count in kinds.most_common(args.top):
        print(f"  {count / (2 * args.runs):6.2f}  {sql}")


if __name__ == "__main__":
    main()
