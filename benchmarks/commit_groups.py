"""How many of a process's writers wait for the turn when a write transaction ends.

Run: `.venv/bin/python benchmarks/commit_groups.py [--shape seq3] [--runs 200]`. Reported,
never asserted.

Group commit would let the writers already queued for this process's turn to write
(`sqlite_writes.WriteTurns`) run their transactions inside the one that is ending,
each as a SAVEPOINT, and COMMIT once for all. How much it can save is bounded by how
many writers are queued at that moment: none, and the group is the transaction alone.
This serves a burst of runs in process (`in_process.hosted`, 8 slots) and, at each
release of the turn, counts the writers waiting for it; it also counts how many
turns were taken at once and how many had to wait.

`--defer` keeps each turn one pass of the event loop longer (its release scheduled
with `call_soon`): the writers among the tasks ready at the COMMIT then queue for it,
as they would if a group commit waited that long for members before its COMMIT.
`--asyncio-loop` runs on asyncio's own loop rather than wfc's (uvloop), which also
shows how many callbacks were ready in the loop at each release.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import in_process  # noqa: E402
import runtime  # noqa: E402

from wfc.runtime.adapters.sql import sqlite_dbapi, sqlite_thread  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402

WAITING_AT_RELEASE: collections.Counter[int] = collections.Counter()
READY_AT_RELEASE: collections.Counter[int] = collections.Counter()
TAKEN: collections.Counter[str] = collections.Counter()
LAST_WRITER: list[int] = [0]


def _instrument(defer: bool) -> None:
    """Count, around `WriteTurns.acquire` and the release of a turn, who waits."""
    acquire = sqlite_dbapi.WriteTurns.acquire
    release = sqlite_dbapi.Connection.release_write_lock_after_transaction

    async def counted_acquire(self: Any) -> Any:
        lock = self._turns.get(asyncio.get_running_loop())
        TAKEN["waited" if lock is not None and lock.locked() else "free"] += 1
        return await acquire(self)

    def counted_release(self: Any) -> None:
        holding = self._holding
        if holding is None or self._in_transaction():
            return
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)  # asyncio's own loop: uvloop does not show it
        if ready is not None:
            READY_AT_RELEASE[len(ready)] += 1
        if not defer:
            WAITING_AT_RELEASE[len(holding.waiting)] += 1
            release(self)
            return
        # The turn kept until the tasks ready now have run: the writers among them queue.
        self._holding = None

        def later() -> None:
            WAITING_AT_RELEASE[len(holding.waiting)] += 1
            holding.release()

        loop.call_soon(later)

    run_statement = sqlite_thread.run_statement

    def counted_statement(connection: Any, sql: str, parameters: Any) -> Any:
        if sql.lstrip()[:5].upper() == "BEGIN":
            # SQLite drops a connection's page cache when another one wrote since its last
            # transaction: counted as BEGINs on another connection than the last one.
            TAKEN["begin"] += 1
            TAKEN["begin_moved"] += LAST_WRITER[0] != id(connection)
            LAST_WRITER[0] = id(connection)
        return run_statement(connection, sql, parameters)

    sqlite_thread.run_statement = counted_statement
    sqlite_dbapi.WriteTurns.acquire = counted_acquire  # type: ignore[method-assign]
    sqlite_dbapi.Connection.release_write_lock_after_transaction = counted_release  # type: ignore[method-assign]


async def _serve(url: str, shape: str, runs: int) -> dict[str, float] | None:
    async with in_process.hosted(url) as (kernel, storage, _host):
        await runtime._burst(kernel, storage, shape, 20, "warm", [])
        WAITING_AT_RELEASE.clear()
        READY_AT_RELEASE.clear()
        TAKEN.clear()
        _rate, cpu = await runtime._burst(kernel, storage, shape, runs, "burst", [])
        return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="seq3")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--asyncio-loop", action="store_true", help="asyncio's own loop, not wfc's (uvloop)"
    )
    parser.add_argument(
        "--defer",
        action="store_true",
        help="keep each turn until the tasks ready at its end have run (one loop pass)",
    )
    args = parser.parse_args()
    _instrument(args.defer)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'groups.db'}"
        factory = None if args.asyncio_loop else loop_factory()
        with asyncio.Runner(loop_factory=factory) as runner:
            cpu = runner.run(_serve(url, args.shape, args.runs))
    releases = sum(WAITING_AT_RELEASE.values())
    spent = f", CPU per run {cpu['driver']:.2f} ms" if cpu else ""
    print(f"shape {args.shape}, {args.runs} runs: {releases} turns released{spent}")
    print(f"  turns taken at once: {TAKEN['free']}, after waiting: {TAKEN['waited']}")
    print(
        f"  BEGINs: {TAKEN['begin']}, on another connection than the last: {TAKEN['begin_moved']}"
    )
    for waiting, count in sorted(WAITING_AT_RELEASE.items()):
        print(f"  {waiting} writers waiting at release: {count} ({count / releases:.1%})")
    for ready, count in sorted(READY_AT_RELEASE.items()):
        print(f"  {ready} callbacks ready in the loop at release: {count} ({count / releases:.1%})")
    mean_group = sum((w + 1) * c for w, c in WAITING_AT_RELEASE.items()) / releases
    print(f"  mean group if every waiter joined: {mean_group:.2f}")


if __name__ == "__main__":
    main()
