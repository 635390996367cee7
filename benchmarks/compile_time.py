"""Compile time of the largest example and of a generated 200-stage workflow (median of N runs).

Run: `.venv/bin/python benchmarks/compile_time.py`. Reported, never asserted.
"""

from __future__ import annotations

import statistics
import sys
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


def measure(source: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = compile_path(source, Path(out))
            times.append(time.perf_counter() - start)
            assert result.ok, result.diagnostics
    return statistics.median(times) * 1000


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    largest = ROOT / "examples" / "documents" / "pipeline.wf"
    print(f"largest example ({largest.name}): {measure(largest, runs):.1f} ms median of {runs}")
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.wf"
        big.write_text(generated_workflow(200))
        print(f"generated 200-stage workflow: {measure(big, runs):.1f} ms median of {runs}")


if __name__ == "__main__":
    main()
