"""One benchmark worker process: a `WorkerHost` over the shapes, until SIGTERM.

Prints `ready` once serving, and on exit one JSON line with its stats and
peak RSS (what `wfc worker` would use; the shapes are built in Python so no
compile step is needed).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import workflows

from wfc.runtime.adapters.sql import PoolOptions, open_storage
from wfc.runtime.hosts import WorkerHost, make_kernel
from wfc.runtime.hosts.event_loop import loop_factory


async def main(url: str, worker_id: str, concurrency: int) -> None:
    storage = open_storage(url, worker_id=worker_id, pool=PoolOptions.for_slots(concurrency))
    await storage.prepare()
    host = WorkerHost(
        make_kernel(storage, workflows()),
        worker_id=worker_id,
        concurrency=concurrency,
        job_poll_interval=timedelta(milliseconds=200 if storage.wakeups is None else 1000),
        wakeups=storage.wakeups,
    )
    ready = asyncio.get_running_loop().call_later(0.2, lambda: print("ready", flush=True))
    stats = await host.serve()
    ready.cancel()
    await storage.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(asdict(stats) | {"peak_rss_mb": round(peak_kb / 1024, 1)}), flush=True)


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=loop_factory()) as runner:  # the loop `wfc worker` uses
        runner.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
