"""Compile time of the largest example and of generated 200-, 1,000- and 5,000-stage
workflows (median of N runs), in-process: wall clock and the process's CPU time, which a
busy machine does not inflate.

Run: `.venv/bin/python benchmarks/compile_time.py [runs] [stage counts…]`. Reported, never
asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from wfc.compiler import compile_path

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
    walls, cpus = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            start, cpu_start = time.perf_counter(), time.process_time()
            result = run(source, Path(out))
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu_start)
            assert result.ok, result.diagnostics
    wall, cpu = statistics.median(walls) * 1000, statistics.median(cpus) * 1000
    return f"{wall:.0f} ms wall, {cpu:.0f} ms CPU, median of {runs}"


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


if __name__ == "__main__":
    main()
