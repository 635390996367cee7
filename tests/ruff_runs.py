"""`ruff` run on generated code by the tests that pin what it must accept."""

from __future__ import annotations

import subprocess
import sys


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    """`ruff <args>` with this interpreter's ruff, its output captured, never raising: the
    caller asserts on `returncode` and shows `stdout + stderr` when it fails."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], capture_output=True, text=True, check=False
    )
