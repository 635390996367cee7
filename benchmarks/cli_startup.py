"""Start-up time of the `wfc` command: the wall time of whole processes, as a user waits for them.

Each command runs `--runs` times (after one warm-up run, not counted, that also
creates the SQLite database and writes wfc's bytecode, as installing it does) and the table gives min, median and max in
milliseconds, of wall time and of the process's CPU time (user + system, which a busy machine
inflates far less than the wall time); quote the medians. The commands: `wfc --help`, `wfc check` and
`wfc compile --check` of one example, and `wfc runs list` on an empty SQLite
database (the cost of the database stack: SQLAlchemy, Alembic's revision check), which
`wfc db upgrade` creates first.

Run: `.venv/bin/python benchmarks/cli_startup.py [--runs 20]`. Reported, never asserted;
`tests/unit/test_cli_imports.py` keeps the light commands off the database stack.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "documents" / "pipeline.wf"


def wfc_command() -> list[str]:
    """The installed `wfc` script beside this interpreter, as a user runs it."""
    script = Path(sys.executable).parent / "wfc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "wfc"]


def times(argv: list[str], runs: int, cwd: Path) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds from start to exit of `argv`, once unmeasured, then `runs` times.

    The unmeasured run may write bytecode even where PYTHONDONTWRITEBYTECODE is set (as in
    these shells): an installed wfc has its modules compiled (pip compiles them), and
    compiling wfc's own modules from source at every start added about 80 ms of CPU to
    each `wfc check`, which no user pays."""
    walls, cpus = [], []
    warm_up = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            argv,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=None if i else warm_up,
        )
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode()}")
        if i:  # the first run warms the file cache
            walls.append(elapsed)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def _row(ms: list[float]) -> str:
    return f"{min(ms):>6.0f}  {statistics.median(ms):>6.0f}  {max(ms):>6.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command")
    args = parser.parse_args()
    wfc = wfc_command()
    example = os.path.relpath(EXAMPLE, ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite+aiosqlite:///{Path(tmp) / 'empty.db'}"
        commands = {
            "wfc --help": [*wfc, "--help"],
            f"wfc check {example}": [*wfc, "check", example],
            f"wfc compile --check {example}": [*wfc, "compile", "--check", example],
            "wfc runs list (empty SQLite)": [*wfc, "runs", "list", "--db", database],
        }
        subprocess.run([*wfc, "db", "upgrade", "--db", database], check=True, capture_output=True)
        print(
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} cores, {args.runs} runs each, ms"
        )
        width = max(len(name) for name in commands)
        print(
            f"{'command':<{width}}  {'wall: min  median     max':>24}  {'CPU: min  median     max':>24}"
        )
        for name, argv in commands.items():
            walls, cpus = times(argv, args.runs, ROOT)
            wall_ms, cpu_ms = [t * 1000 for t in walls], [t * 1000 for t in cpus]
            print(f"{name:<{width}}  {_row(wall_ms)}  {_row(cpu_ms)}")


if __name__ == "__main__":
    main()
