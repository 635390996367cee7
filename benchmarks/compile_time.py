"""Compile time of the largest example and of generated 200-, 1,000- and 5,000-stage
workflows (median of N runs), in-process: wall clock and the process's CPU time, which a
busy machine inflates far less, split into user and system time. The system time is
mostly the kernel creating the package's files (one stub per stage, into a fresh
directory): on the shared VM this has cost from 0.03 to 0.6 ms of CPU per file from one
minute to the next, so the user time is the figure that compares code. Each generated
file's parse alone (text to AST, user CPU) is reported too.

Run: `.venv/bin/python benchmarks/compile_time.py [runs] [stage counts…]`. Reported, never
asserted.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import tempfile
import time
from pathlib import Path

from wfc.compiler import compile_path
from wfc.compiler.driver import collector_paused
from wfc.compiler.parser import parse_source_all
from wfc.compiler.source import SourceFile

ROOT = Path(__file__).resolve().parent.parent


def generated_workflow(stages: int) -> str:
    """A chain with a parallel pair every tenth step, each stage with typed input/output/config."""
    lines = ["workflow big {", "  input { seed: int }", "  output { value: int }"]
    flow: list[str] = []
    for i in range(stages):
        lines.append(
            f"  stage s{i} {{ input none needs {'s' + str(i - 1) if i else 's0'} "
            f'output {{ value: int, note: str = "x" }} config {{ factor: int (>= 1) = 2 }} }}'
            if i
            else '  stage s0 { input { seed: int } output { value: int, note: str = "x" } }'
        )
        flow.append(f"s{i}")
    lines.append("  flow " + " -> ".join(flow))
    lines.append("}")
    return "\n".join(lines) + "\n"


def measure(source: Path, runs: int, *, collector: bool = False) -> str:
    """`wall ms (cpu ms)`, medians of `runs` compiles into a fresh directory; with
    `collector`, the cycle collector left on during the compile (as before it was paused)."""
    run = compile_path.__wrapped__ if collector else compile_path  # type: ignore[attr-defined]
    walls, users, systems = [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
            result = run(source, Path(out))
            after = resource.getrusage(resource.RUSAGE_SELF)
            walls.append(time.perf_counter() - start)
            users.append(after.ru_utime - before.ru_utime)
            systems.append(after.ru_stime - before.ru_stime)
            assert result.ok, result.diagnostics
    cpu = statistics.median(u + s for u, s in zip(users, systems, strict=True))
    wall, user, system = (statistics.median(t) for t in (walls, users, systems))
    return (
        f"{wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU ({user * 1000:.0f} user + "
        f"{system * 1000:.0f} system), median of {runs}"
    )


def measure_parse(source: Path, runs: int) -> str:
    """User CPU of parsing the file into its AST alone (`parse_source_all`), the part of a
    compile that the lexer and the LALR loop are: median and minimum of `runs`."""
    file = SourceFile(path=source, text=source.read_text(encoding="utf-8"))
    parse = collector_paused(parse_source_all)  # as in a compile
    users = []
    for _ in range(runs):
        gc.collect()  # the last parse's garbage, outside the measure
        before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        parse(file)
        users.append(resource.getrusage(resource.RUSAGE_SELF).ru_utime - before)
    return (
        f"{statistics.median(users) * 1000:.0f} ms user (min {min(users) * 1000:.0f}), "
        f"median of {runs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Compile time of generated workflows.")
    parser.add_argument("runs", nargs="?", type=int, default=5, help="compiles per case")
    parser.add_argument("counts", nargs="*", type=int, help="stage counts (200 1000 5000)")
    args = parser.parse_args()
    runs, counts = args.runs, args.counts or [200, 1000, 5000]
    largest = ROOT / "examples" / "documents" / "pipeline.wf"
    print(f"largest example ({largest.name}): {measure(largest, runs)}")
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            big = Path(tmp) / f"big{count}.wf"
            big.write_text(generated_workflow(count))
            print(f"generated {count}-stage workflow: {measure(big, runs)}")
            print(f"  with the collector on: {measure(big, runs, collector=True)}")
            print(f"  parse alone: {measure_parse(big, runs)}")


if __name__ == "__main__":
    main()
