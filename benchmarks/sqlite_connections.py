"""Which `sqlite3` connection each SQLite statement of an in-process burst runs on, and
what SQLite's own calls cost per run.

Run: `.venv/bin/python benchmarks/sqlite_connections.py [--shape seq3] [--runs 300]`.
Reported, never asserted.

Serves a warm-up burst then a measured one in process (`in_process.hosted`), with
`sqlite_thread.run_statement` wrapped: per run, the BEGINs that ran on another
connection than the transaction before (SQLite then drops that connection's page
cache), and each statement's CPU (`time.thread_time`). The measured burst is bracketed
by `stat` calls of two marker paths, `WFC_MARK_START` and `WFC_MARK_END`, so a trace
of the process (`strace -f -o trace.txt …`) can be cut to the burst and its syscalls
counted per run (`--count-trace trace.txt` does it).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import in_process  # noqa: E402
import runtime  # noqa: E402

from wfc.runtime.adapters.sql import sqlite_thread  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402

_real = sqlite_thread.run_statement


class Watch:
    def __init__(self, *, timed: bool) -> None:
        self.timed = timed  # `time.thread_time` is a syscall: off when tracing them
        self.on = False
        self.begins = 0
        self.moved = 0
        self.last: int | None = None
        self.cpu: collections.defaultdict[str, list[float]] = collections.defaultdict(list)

    def run_statement(self, connection: Any, sql: str, parameters: Any) -> Any:
        if not self.on:
            return _real(connection, sql, parameters)
        if not self.timed:
            self._count(connection, sql)
            return _real(connection, sql, parameters)
        head = sql.lstrip()[:40]
        self._count(connection, sql)
        started = time.thread_time()
        try:
            return _real(connection, sql, parameters)
        finally:
            self.cpu[
                head.split()[0].upper() if head.upper().startswith(("BEGIN", "COMMIT")) else head
            ].append(time.thread_time() - started)

    def _count(self, connection: Any, sql: str) -> None:
        if sql.lstrip()[:5].upper() == "BEGIN":
            self.begins += 1
            self.moved += self.last is not None and self.last != id(connection)
            self.last = id(connection)


async def burst(watch: Watch, shape: str, runs: int, warm: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'connections.db'}"
        async with in_process.hosted(url) as (kernel, storage, _host):
            await runtime._burst(kernel, storage, shape, warm, "warm", [])
            os.path.exists("WFC_MARK_START")
            watch.on = True
            started = time.process_time()
            await runtime._burst(kernel, storage, shape, runs, "burst", [])
            spent = time.process_time() - started
            watch.on = False
            os.path.exists("WFC_MARK_END")
    return spent


def count_trace(path: str, runs: int) -> None:
    calls: collections.Counter[str] = collections.Counter()
    inside = False
    for line in Path(path).read_text().splitlines():
        if "WFC_MARK_START" in line:
            inside = True
        elif "WFC_MARK_END" in line:
            break
        elif inside and (found := re.match(r"(?:\[pid\s+\d+\]\s+|\d+\s+)?(\w+)\(", line)):
            calls[found.group(1)] += 1
    print(f"syscalls per run: {sum(calls.values()) / runs:.1f}")
    for name, count in calls.most_common(12):
        print(f"| {name} | {count / runs:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="seq3")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warm", type=int, default=50)
    parser.add_argument("--count-trace", help="an `strace -f` output of a run of this script")
    parser.add_argument("--untimed", action="store_true", help="no per-statement CPU (tracing)")
    args = parser.parse_args()
    if args.count_trace:
        count_trace(args.count_trace, args.runs)
        return
    watch = Watch(timed=not args.untimed)
    sqlite_thread.run_statement = watch.run_statement
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        spent = runner.run(burst(watch, args.shape, args.runs, args.warm))
    runs = args.runs
    total = sum(sum(times) for times in watch.cpu.values())
    print(
        f"CPU per run {1000 * spent / runs:.2f} ms; SQLite statements {1000 * total / runs:.3f} ms"
    )
    print(f"BEGINs {watch.begins}, on another connection than the one before: {watch.moved}")
    print("| statement | ms per run | per run | µs each |")
    print("|---|---|---|---|")
    for head, times in sorted(watch.cpu.items(), key=lambda item: -sum(item[1]))[:12]:
        print(
            f"| {head} | {1000 * sum(times) / runs:.3f} | {len(times) / runs:.2f} "
            f"| {1e6 * sum(times) / len(times):.1f} |"
        )


if __name__ == "__main__":
    main()
