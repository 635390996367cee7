"""The in-process rows of `runtime.py`'s table, each measured in a fresh process of its own.

`memory`: the memory adapters as a user's test suite drives them (`wfc.testing`,
`memory.table_row`); `sqlite`: the embedded default with its host in the calling
process, as `wfc run` and `run_and_wait` serve a run when no worker does
(`in_process.measure`). A process of its own gives each case its own peak RSS
(the worker rows report their worker's) and a clean event loop.

`python embedded.py memory|sqlite SHAPE RUNS ISOLATED [URL]` prints the row as
one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def case(database: str, shape: str, runs: int, isolated: int, url: str = "") -> dict[str, Any]:
    """The row of `database` ("memory", or "sqlite" on the migrated file at `url`)."""
    out = subprocess.run(
        [sys.executable, str(HERE / "embedded.py"), database, shape, str(runs), str(isolated), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def measure(database: str, shape: str, runs: int, isolated: int, url: str) -> dict[str, Any]:
    """The row, measured in this process; its peak RSS is this process's."""
    sys.path.insert(0, str(HERE))
    if database == "memory":
        import memory

        row = memory.table_row(shape, runs, isolated)
    else:
        import in_process

        from wfc.runtime.hosts.event_loop import loop_factory

        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # the loop `wfc run` uses
            row = runner.run(in_process.measure(url, shape, runs, isolated))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return row | {"peak_rss_mb": round(peak_kb / 1024, 1)}


if __name__ == "__main__":
    database, shape, runs, isolated, *url = sys.argv[1:]
    row = measure(database, shape, int(runs), int(isolated), url[0] if url else "")
    print(json.dumps(row), flush=True)
