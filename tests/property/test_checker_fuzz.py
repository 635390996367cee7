"""Fuzzing: a few thousand random mutations of the example files through `wfc check`
in-process. None may raise: every input gets diagnostics or passes.

CI runs `WFC_FUZZ_CASES` cases (default 2,000, about 20 s) from a fixed seed, so a
red build is reproducible; `benchmarks/fuzz_checker.py` runs longer hunts from
random seeds and prints each crash's source.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.fuzzing import run_cases

CASES = int(os.environ.get("WFC_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("WFC_FUZZ_SEED", "20261206"))


def test_no_mutant_of_an_example_crashes_the_checker(tmp_path: Path) -> None:
    crashes = list(run_cases(CASES, SEED, tmp_path))
    assert not crashes, "\n\n".join(f"{c.name}:\n{c.source}\n{c.error}" for c in crashes[:3])
