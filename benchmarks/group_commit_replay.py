"""What group commit would save SQLite: a real burst's write transactions replayed, each
committed alone and then K at a time as savepoints of one transaction.

Run: `.venv/bin/python benchmarks/group_commit_replay.py [--shape seq3] [--runs 200]
[--group 1 4 4-plain 4-memory] [--repeat 5] [--instructions]`. Reported, never asserted.

A burst of runs is served in process (`in_process.hosted`, 8 slots) with
`sqlite_thread.run_statement` recorded: every statement a write transaction ran, with
its parameters, in the order SQLite ran them (one process's writers take turns, and a
transaction runs whole within its turn, so transactions never interleave). A snapshot of
the database from just before the burst (`sqlite3`'s backup) is then replayed on one
stdlib `sqlite3` connection with wfc's PRAGMAs (WAL, `synchronous=NORMAL`,
checkpoints off): with `--group 1` each transaction between its own BEGIN IMMEDIATE and
COMMIT, as wfc runs them; with `--group K` K consecutive transactions as SAVEPOINT …
RELEASE inside one BEGIN IMMEDIATE … COMMIT, as a group commit would. Statements
outside a transaction (reads, mostly) are left out of both. Reported per run: the CPU
of the replay's statements (`time.thread_time`, COMMITs apart), and the WAL frames
(pages) the commits wrote. Alternated, `--repeat` times, each on a fresh copy. With
`--instructions`, each replay runs once in a child under callgrind instead, counting
the instructions of the replay alone; a COMMIT's writes are the kernel's, which
callgrind does not see, so the CPU figures are the ones that show them.

`K-plain` groups K transactions without savepoints: not safe (a failed member could
not be undone), measured to show what the savepoints cost. `K-memory` sets
`temp_store=MEMORY`: a savepoint keeps the original of each page it changes in a
statement journal, a temporary file by default.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import pickle
import re
import shutil
import sqlite3
import statistics
import subprocess
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
_FRAME_HEADER = 24
_TOGGLE_C = """#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; }
void stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""

# One recorded write transaction: its statements and their parameters, BEGIN and end left out.
Transaction = list[tuple[str, Any]]


class Recorder:
    def __init__(self) -> None:
        self.on = False
        self.open: dict[int, Transaction] = {}
        self.done: list[Transaction] = []
        self.rolled_back = 0

    def run_statement(self, connection: sqlite3.Connection, sql: str, parameters: Any) -> Any:
        if self.on:
            self._note(connection, sql, parameters)
        return _real(connection, sql, parameters)

    def _note(self, connection: sqlite3.Connection, sql: str, parameters: Any) -> None:
        head = sql.lstrip()[:8].upper()
        key = id(connection)
        if head.startswith("BEGIN"):
            self.open[key] = []
        elif key not in self.open:
            return  # outside a transaction of ours: not replayed
        elif head.startswith(("COMMIT", "END")):
            self.done.append(self.open.pop(key))
        elif head.startswith("ROLLBACK"):
            self.open.pop(key)
            self.rolled_back += 1
        else:
            kept = None if parameters is None else tuple(map(_kept, parameters))
            self.open[key].append((sql, kept))


def _kept(value: Any) -> Any:
    """A parameter as it can be pickled (a blob's memoryview as bytes)."""
    return bytes(value) if isinstance(value, memoryview) else value


async def record(path: Path, snapshot: Path, shape: str, runs: int) -> Recorder:
    recorder = Recorder()
    sqlite_thread.run_statement = recorder.run_statement
    url = f"sqlite+aiosqlite:///{path}"
    async with in_process.hosted(url) as (kernel, storage, _host):
        await runtime._burst(kernel, storage, shape, 20, "warm", [])
        source = sqlite3.connect(path)
        target = sqlite3.connect(snapshot)
        source.backup(target)  # a consistent copy, while the host's writers are idle
        source.close()
        target.close()
        recorder.on = True
        await runtime._burst(kernel, storage, shape, runs, "burst", [])
        recorder.on = False
    sqlite_thread.run_statement = _real
    return recorder


def replay(
    snapshot: Path, copy: Path, transactions: list[Transaction], mode: str, toggle: Any = None
) -> dict[str, float]:
    """`mode`: K (transactions per COMMIT, each a savepoint when K > 1), `K-plain` (no
    savepoints: what the savepoints cost), `K-memory` (`temp_store=MEMORY`: savepoints'
    journal kept in memory)."""
    group = int(mode.split("-")[0])
    savepoints = group > 1 and not mode.endswith("-plain")
    shutil.copyfile(snapshot, copy)
    for suffix in ("-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    db = sqlite3.connect(copy, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        db.execute(f"PRAGMA {pragma}").fetchall()
    db.execute("PRAGMA wal_autocheckpoint=0")
    if mode.endswith("-memory"):
        db.execute("PRAGMA temp_store=MEMORY")
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    wal = Path(f"{copy}-wal")
    db.execute("SELECT count(*) FROM runs").fetchone()  # the WAL file exists from here
    wal_before = wal.stat().st_size
    statements = commits = 0.0
    clock = time.thread_time
    if toggle is not None:
        toggle.start()
    for first in range(0, len(transactions), group):
        members = transactions[first : first + group]
        started = clock()
        db.execute("BEGIN IMMEDIATE")
        for transaction in members:
            if savepoints:
                db.execute("SAVEPOINT member")
            for sql, parameters in transaction:
                db.execute(sql, () if parameters is None else parameters).fetchall()
            if savepoints:
                db.execute("RELEASE member")
        statements += clock() - started
        started = clock()
        db.execute("COMMIT")
        commits += clock() - started
    if toggle is not None:
        toggle.stop()
    frames = (wal.stat().st_size - wal_before) / (page_size + _FRAME_HEADER)
    db.close()
    return {"statements_s": statements, "commits_s": commits, "frames": frames}


def counted(tmp: Path, transactions: list[Transaction], modes: list[str]) -> dict[str, Any]:
    """Each mode's replay counted by callgrind (instructions, the load cannot move them),
    in a child of its own."""
    (tmp / "transactions.pickle").write_bytes(pickle.dumps(transactions))
    toggle = tmp / "toggle.so"
    (tmp / "toggle.c").write_text(_TOGGLE_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(toggle), str(tmp / "toggle.c")], check=True)
    found: dict[str, Any] = {}
    for mode in modes:
        done = subprocess.run(
            [
                *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
                "--callgrind-out-file=/dev/null",
                *(sys.executable, __file__, "--child", str(tmp), mode),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        instructions = re.search(r"Collected : (\d+)", done.stderr)
        assert instructions is not None, done.stderr[-2000:]
        found[mode] = json.loads(done.stdout) | {"instructions": int(instructions.group(1))}
    return found


def _child(tmp: Path, mode: str) -> None:
    transactions = pickle.loads((tmp / "transactions.pickle").read_bytes())
    toggle = ctypes.CDLL(str(tmp / "toggle.so"))
    outcome = replay(tmp / "snapshot.db", tmp / f"counted-{mode}.db", transactions, mode, toggle)
    print(json.dumps(outcome), flush=True)
    os._exit(0)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(Path(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="seq3")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--group", nargs="+", default=["1", "4", "4-plain", "4-memory"], help="see `replay`"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--instructions", action="store_true", help="count each replay with callgrind instead"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "snapshot.db"
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            recorder = runner.run(record(Path(tmp) / "served.db", snapshot, args.shape, args.runs))
        transactions = recorder.done
        print(
            f"shape {args.shape}, {args.runs} runs: {len(transactions)} write transactions "
            f"({len(transactions) / args.runs:.2f} per run), {recorder.rolled_back} rolled back"
        )
        if args.instructions:
            runs = args.runs
            print("| group | commits per run | WAL pages per run | M instructions per run |")
            print("|---|---|---|---|")
            for mode, outcome in counted(Path(tmp), transactions, args.group).items():
                per_commit = int(mode.split("-")[0])
                print(
                    f"| {mode} | {len(transactions) / per_commit / runs:.2f} "
                    f"| {outcome['frames'] / runs:.1f} | {outcome['instructions'] / runs / 1e6:.3f} |"
                )
            return
        seen: dict[str, list[dict[str, float]]] = {group: [] for group in args.group}
        for _ in range(args.repeat):
            for group in args.group:
                seen[group].append(replay(snapshot, Path(tmp) / "replay.db", transactions, group))
    print(
        "| group | commits per run | WAL pages per run | statements µs per run "
        "| COMMITs µs per run | together µs per run |"
    )
    print("|---|---|---|---|---|---|")
    runs = args.runs
    for group, samples in seen.items():
        statements = statistics.median(s["statements_s"] for s in samples) * 1e6 / runs
        commits = statistics.median(s["commits_s"] for s in samples) * 1e6 / runs
        together = (
            statistics.median(s["statements_s"] + s["commits_s"] for s in samples) * 1e6 / runs
        )
        frames = statistics.median(s["frames"] for s in samples) / runs
        per_commit = int(group.split("-")[0])
        print(
            f"| {group} | {len(transactions) / per_commit / runs:.2f} | {frames:.1f} "
            f"| {statements:.0f} | {commits:.0f} | {together:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
