"""A longer fuzzing hunt than CI's: random mutations of the examples through `wfc check`.

Run: `.venv/bin/python benchmarks/fuzz_checker.py [cases] [seed]` (default 50,000 cases,
a random seed, printed so that a crash can be replayed). Prints the cases per second
and, for the first crashes, the mutated source and its traceback; exits 1 on a crash.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzzing import run_cases


def main() -> None:
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else random.randrange(2**32)
    print(f"{cases} cases from seed {seed}")
    start, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        crashes = list(run_cases(cases, seed, Path(tmp)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"{len(crashes)} crashes; {wall:.1f} s wall, {cpu:.1f} s CPU, {cases / wall:.0f} cases/s")
    for crash in crashes[:5]:
        print(f"--- {crash.name}\n{crash.source}\n{crash.error}")
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
