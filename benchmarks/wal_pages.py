"""Pages a SQLite run writes to the WAL, by b-tree, with statements and transactions per run.

Run: `.venv/bin/python benchmarks/wal_pages.py [--shape seq3] [--runs 200]`. Reported,
never asserted.

A COMMIT under `synchronous=NORMAL` syncs nothing but copies every page its
transaction changed into the WAL (about 10 µs a page), once per transaction
whatever the rows: what it costs is how many b-trees (tables and indexes) each
transaction touches. This serves a burst of runs in process (`in_process.hosted`)
with the WAL's checkpoints held off, so the WAL only grows; each frame written
during the burst names its page, and `dbstat` names the b-tree that page belongs to.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import in_process  # noqa: E402
import runtime  # noqa: E402

from wfc.runtime.adapters.sql import migrate, sqlite_writes  # noqa: E402
from wfc.runtime.adapters.sql.engine import create_engine  # noqa: E402
from wfc.runtime.hosts.event_loop import loop_factory  # noqa: E402

_FRAME_HEADER = 24


async def _burst(url: str, wal: Path, shape: str, runs: int) -> tuple[bytes, list[str]]:
    """The WAL bytes and the statements of a burst of `runs`, after a first burst."""
    async with in_process.hosted(url) as (kernel, storage, _host):
        await runtime._burst(kernel, storage, shape, 20, "warm", [])
        start = wal.stat().st_size
        sent: list[str] = []
        await runtime._burst(kernel, storage, shape, runs, "burst", [], statements=sent)
        with wal.open("rb") as file:  # read before the last connection closes: it is deleted
            file.seek(start)
            return file.read(), sent


async def _migrated(url: str, database: Path, sql: str) -> None:
    """The file at the head revision, then `sql` run on it (a layout to measure): the
    burst's storage finds it at head and leaves it as it is."""
    engine = create_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()
    with sqlite3.connect(database) as connection:
        connection.executescript(sql)


def measure(
    shape: str, runs: int, by_statement: bool = False, by_commit: bool = False, sql: str = ""
) -> None:
    # No checkpoint during the burst: the WAL then holds every frame its commits wrote.
    sqlite_writes.Checkpoints.due = lambda self: False  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "wal-pages.db"
        wal = Path(f"{database}-wal")
        url = f"sqlite+aiosqlite:///{database}"
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            if sql:
                runner.run(_migrated(url, database, sql))
            frames, sent = runner.run(_burst(url, wal, shape, runs))
        with sqlite3.connect(database) as connection:
            page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
            owner = dict(
                (page, name) for name, page in connection.execute("SELECT name, pageno FROM dbstat")
            )
    size = _FRAME_HEADER + page_size
    assert len(frames) % size == 0, "a burst writes whole frames"
    headers = [struct.unpack(">II", frames[at : at + 8]) for at in range(0, len(frames), size)]
    pages = [page for page, _ in headers]
    by_tree = collections.Counter(owner.get(page, "?") for page in pages)
    commits = sum(1 for sql in sent if sql.startswith("COMMIT"))
    print(
        f"{shape}: {len(pages) / runs:.1f} WAL pages, {len(sent) / runs:.1f} statements, "
        f"{commits / runs:.2f} transactions per run ({runs} runs, pages of {page_size} bytes)"
    )
    print("| b-tree | pages per run |")
    print("|---|---|")
    for name, count in by_tree.most_common():
        print(f"| {name} | {count / runs:.2f} |")
    if by_statement:
        print("| statement | per run |")
        print("|---|---|")
        for sql, count in collections.Counter(" ".join(s.split())[:90] for s in sent).most_common():
            print(f"| `{sql}` | {count / runs:.2f} |")
    if by_commit:
        _by_commit(headers, owner, runs)


def _by_commit(headers: list[tuple[int, int]], owner: dict[int, str], runs: int) -> None:
    """Per b-tree, the commits that wrote a page of it and those that wrote more than
    one (a split, or rows far apart); and page 1 (the header, on `sqlite_schema`'s
    first page) against the commits that grew the file. A commit's last frame carries
    the database's size in pages after it, the others 0."""
    touched: collections.Counter[str] = collections.Counter()
    several: collections.Counter[str] = collections.Counter()
    commit: list[int] = []
    sizes: list[int] = []
    first_page: list[bool] = []
    for page, size_after in headers:
        commit.append(page)
        if not size_after:
            continue
        for name, count in collections.Counter(owner.get(p, "?") for p in commit).items():
            touched[name] += 1
            several[name] += count > 1
        sizes.append(size_after)
        first_page.append(1 in commit)
        commit = []
    grew = [i for i in range(1, len(sizes)) if sizes[i] > sizes[i - 1]]
    print(
        f"{len(sizes) / runs:.2f} commits per run; {len(grew) / runs:.2f} grew the file, "
        f"{sum(first_page) / runs:.2f} wrote page 1, "
        f"{sum(first_page[i] for i in grew) / runs:.2f} both"
    )
    print("| b-tree | commits writing it, per run | of them, more than one page |")
    print("|---|---|---|")
    for name, count in touched.most_common():
        print(f"| {name} | {count / runs:.2f} | {several[name] / runs:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="seq3", help="a shape of `shapes.py` (seq3, fan …)")
    parser.add_argument("--runs", type=int, default=200, help="runs in the measured burst")
    parser.add_argument(
        "--statements", action="store_true", help="also each statement's count per run"
    )
    parser.add_argument(
        "--commits", action="store_true", help="also the commits that write each b-tree"
    )
    parser.add_argument(
        "--sql",
        default="",
        help="SQL run on the migrated file before the burst: a layout to measure "
        "(`DROP INDEX ix_jobs_run_id`, a table rebuilt WITHOUT ROWID …)",
    )
    args = parser.parse_args()
    measure(args.shape, args.runs, args.statements, args.commits, args.sql)


if __name__ == "__main__":
    main()
