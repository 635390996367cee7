"""Instructions per run, counted by callgrind over a fixed burst: a figure the load does not move.

Run: `.venv/bin/python benchmarks/run_instructions.py --store memory --shape seq3`
(`--store sqlite` for a SQLite file served by a host in the process, as `wfc run`;
`--store postgres` for the same host on the PostgreSQL database at
`WFC_BENCH_DATABASE_URL` (default: `wfc_instructions` on the local server, made if
missing), whose tables it drops and makes again: only this process's
instructions count, the worker's side of each statement, not the server's).
Needs valgrind (with its `callgrind.h`) and a C compiler. Reported, never asserted.

On a shared machine CPU per run moves by a third between identical runs; the
instructions a run executes do not. This script runs itself under
`valgrind --tool=callgrind --instr-atstart=no`: the child warms up (a kernel holding
50 finished runs and 20 more runs for memory; a first burst of 20 for SQLite), then
switches instrumentation on (a callgrind client request, from a small library
compiled here) for `--runs` runs and leaves with `os._exit`, so neither start-up nor
teardown is counted. Both threads of the SQLite host count. The SQLite host's polls
and ticks are a minute apart: under callgrind a run takes fifty times as long, and
work done by the clock would count with it.

- memory: `TestKernel.run` one at a time, as `memory.py`'s one-at-a-time case;
- sqlite: `--runs` runs created at once and served by a `WorkerHost` of 8 slots in
  the process (`in_process.py`'s burst), the creation included;
- floor: `floor.py`'s hand-written `sqlite3` queue, `--runs` runs made and run to their
  end (its schema and connection included: a few statements, once).

`--shape large` (memory only): `large_outputs.py`'s chain of `--stages` stages handing
on 10,000 records (1.7 MB of JSON), one run after one warm run, `--runs` of them (a
run is ~0.3 M instructions a stage of its own bodies' and the runtime's; use
`--runs 2`): what the runtime does per byte of output, the cyclic collector's share
included, counted as exactly as the small shapes.

`--by-object` also splits each run's instructions by the library they ran in (SQLite's
own C, the interpreter, the C modules, libc, ...), read from callgrind's output: what
a run costs in SQLite itself against what it costs in Python, for wfc and the floor
alike.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_TOGGLE_C = """#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; }
void stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", choices=("memory", "sqlite", "postgres", "floor"), default="memory"
    )
    parser.add_argument("--shape", choices=("seq3", "fan", "large"), default="seq3")
    parser.add_argument("--stages", type=int, default=3, help="--shape large: its stages")
    parser.add_argument("--runs", type=int, default=100, help="runs counted")
    parser.add_argument("--by-object", action="store_true", help="split by library")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the toggle library: run, counted
    args = parser.parse_args()
    if args.child:
        _counted(args.child, args.store, args.shape, args.runs, args.stages)
        return
    with tempfile.TemporaryDirectory() as tmp:
        toggle = Path(tmp) / "toggle.so"
        source = Path(tmp) / "toggle.c"
        source.write_text(_TOGGLE_C)
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(toggle), str(source)], check=True)
        out = Path(tmp) / "callgrind.out" if args.by_object else Path("/dev/null")
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            *("--store", args.store, "--shape", args.shape, "--runs", str(args.runs)),
            *("--stages", str(args.stages)),
            *("--child", str(toggle)),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        by_object = _self_cost_by_object(out) if args.by_object else {}
    found = re.search(r"Collected : (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    total = int(found.group(1))
    shape = f"large, {args.stages} stages" if args.shape == "large" else args.shape
    print(f"{args.store} {shape}: {total / args.runs / 1e6:.3f} M instructions per run")
    for name, cost in sorted(by_object.items(), key=lambda item: -item[1]):
        if cost / total >= 0.001:
            print(f"  {cost / args.runs / 1e6:7.3f} M  {cost / total:6.1%}  {name}")


def _self_cost_by_object(path: Path) -> dict[str, int]:
    """Each ELF object's own instructions (not its callees') in a callgrind output file:
    the cost lines of a function count for the object named by the last `ob=`, except
    the line after `calls=`, which is the call's inclusive cost and is skipped."""
    names: dict[str, str] = {}
    costs: dict[str, int] = {}
    current = "?"
    after_call = False
    for line in path.read_text().splitlines():
        if line.startswith(("ob=", "cob=")):  # an object's name is given at its first mention
            key, _, name = line.partition("=")[2].partition(" ")
            if name:
                names[key] = Path(name).name
            if line.startswith("ob="):
                current = names.get(key, key)
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            fields = line.split()
            if not after_call and len(fields) > 1:
                costs[current] = costs.get(current, 0) + int(fields[-1])
            after_call = False
    return costs


def _settled() -> None:
    """A full collection just before the count: each count then starts from the same
    collector state. Without it, whether one of the cyclic collector's full collections
    (which walk every object held: ~40 M instructions with the memory kernel's thousands
    of runs) fell inside the counted runs moved a count by 0.1-0.4 M a run between two
    versions whose steady state is the same."""
    gc.collect()


def _counted(toggle_path: str, store: str, shape: str, runs: int, stages: int) -> None:
    toggle = ctypes.CDLL(toggle_path)
    if shape == "large":
        assert store == "memory", "--shape large runs on the memory adapters"
        step, counted = _large(stages, runs)
    elif store == "memory":
        step, counted = _memory(shape, runs)
    elif store == "floor":
        step, counted = _floor(shape, runs)
    else:
        step, counted = _sqlite(shape, runs, postgres=store == "postgres")
    step(toggle, counted)
    sys.stdout.flush()
    os._exit(0)  # no teardown counted, nor run


def _memory(shape: str, runs: int) -> tuple[Any, Any]:
    import memory

    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = asyncio.get_event_loop()
    tk = memory.filled(shape, 50)
    loop.run_until_complete(memory.one_at_a_time(tk, shape, 20))

    def step(toggle: Any, counted: Any) -> None:
        _settled()
        toggle.start()
        loop.run_until_complete(counted())
        toggle.stop()

    return step, partial(memory.one_at_a_time, tk, shape, runs)


def _large(stages: int, runs: int) -> tuple[Any, Any]:
    import large_outputs

    from wfc.runtime.records import Status
    from wfc.testing import make_test_kernel

    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = asyncio.get_event_loop()
    tk = make_test_kernel(large_outputs.chain(stages))
    seed = {"records": 10_000}

    async def counted() -> None:
        for _ in range(runs):
            assert (await tk.run("large", seed)).status is Status.COMPLETED

    loop.run_until_complete(tk.run("large", seed))

    def step(toggle: Any, counted: Any) -> None:
        _settled()
        toggle.start()
        loop.run_until_complete(counted())
        toggle.stop()

    return step, counted


def _floor(shape: str, runs: int) -> tuple[Any, Any]:
    import floor

    def step(toggle: Any, _: Any) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            _settled()
            toggle.start()
            floor.sqlite_floor(Path(tmp) / "floor.db", shape, runs)
            toggle.stop()

    return step, None


def _sqlite(shape: str, runs: int, postgres: bool = False) -> tuple[Any, Any]:
    def step(toggle: Any, _: Any) -> None:
        if postgres:
            url = os.environ.get("WFC_BENCH_DATABASE_URL", _POSTGRES)
            asyncio.run(_emptied(url))
            asyncio.run(_sqlite_bursts(url, shape, runs, toggle))
            return
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_sqlite_bursts(f"sqlite+aiosqlite:///{tmp}/count.db", shape, runs, toggle))

    return step, None


# A database of its own: its public schema is dropped at each count.
_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/wfc_instructions"


async def _emptied(url: str) -> None:
    """The database's public schema dropped and made again at the head revision: each
    count starts from empty tables, as the SQLite file does. The database is made first
    if it does not exist."""
    from sqlalchemy import make_url, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from wfc.runtime.adapters.sql import migrate

    target = make_url(url)
    server = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as conn:
            found = await conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            )
            if found.first() is None:
                await conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        await server.dispose()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _sqlite_bursts(url: str, shape: str, runs: int, toggle: Any) -> None:
    async with _hosted(url) as (kernel, storage):
        await _burst(kernel, storage, shape, "warm", 20)
        _settled()
        toggle.start()
        await _burst(kernel, storage, shape, "counted", runs)
        toggle.stop()
        sys.stdout.flush()
        os._exit(0)


@asynccontextmanager
async def _hosted(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """`in_process.hosted`, with the host's clock-driven work a minute apart."""
    from shapes import workflows

    from wfc.runtime.adapters.sql import PoolOptions, open_storage
    from wfc.runtime.hosts import WorkerHost, make_kernel

    storage = open_storage(url, worker_id="count", pool=PoolOptions.for_slots(8))
    await storage.prepare()
    kernel = make_kernel(storage, workflows())
    minute = timedelta(minutes=1)
    host = WorkerHost(
        kernel,
        worker_id="count",
        concurrency=8,
        job_poll_interval=minute,
        orchestration_interval=minute,
        heartbeat_interval=minute,
    )
    serving = asyncio.create_task(host.serve())
    try:
        yield kernel, storage
    finally:
        await host.stop()
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await storage.close()


async def _burst(kernel: Any, storage: Any, shape: str, tag: str, runs: int) -> None:
    """`runs` runs created at once, waited for by a count every 5 s (few polls counted)."""
    import runtime
    from shapes import INPUT

    from wfc.runtime.commands import RunCreate

    before = await runtime._finished(storage)
    for n in range(runs):
        command = RunCreate(idempotency_key=f"{tag}-{n}", workflow_id=shape, input=INPUT)
        await kernel.dispatch(command)
    while await runtime._finished(storage) < before + runs:
        await asyncio.sleep(5)


if __name__ == "__main__":
    main()
