"""Event lag: how long after a run's event commits the outbox delivers it to plugins.

Run: `.venv/bin/python benchmarks/event_lag.py` (PostgreSQL as for `runtime.py`; a fresh
database is created and dropped). Reported, never
asserted.

A burst of RUNS `seq3` runs (three trivial stages, twelve events each) on WORKERS
`bench_worker.py` processes; once every run has finished and every event is
delivered, the lag of each event is `published_at - occurred_at` from the outbox
itself: p50, p99 and max, with the runs/s of the burst, so a faster outbox is not
bought with slower runs. Before the outbox flusher (workers flushing 100 events per
10 s tick), a burst of 3,100 runs left 37,000 of 37,200 events unpublished when the
last run ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from sqlalchemy import text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from runtime import _migrate, postgres, start, stop_all  # noqa: E402
from shapes import workflows  # noqa: E402

from wfc.runtime.adapters.sql import open_storage  # noqa: E402
from wfc.runtime.commands import RunCreate  # noqa: E402
from wfc.runtime.hosts import make_kernel  # noqa: E402

_LEFT = text(
    "SELECT (SELECT count(*) FROM runs WHERE status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')),"
    " (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
)
_LAGS = text("SELECT EXTRACT(EPOCH FROM (published_at - occurred_at)) FROM outbox ORDER BY 1")
_SPAN = text("SELECT EXTRACT(EPOCH FROM (max(completed_at) - min(created_at))) FROM runs")


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def _burst(url: str, runs: int) -> dict[str, float]:
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())
    try:
        await asyncio.gather(
            *(
                kernel.dispatch(
                    RunCreate(idempotency_key=f"lag-{n}", workflow_id="seq3", input={"n": n})
                )
                for n in range(runs)
            )
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            async with storage.engine.connect() as conn:
                unfinished, unpublished = (await conn.execute(_LEFT)).one()
            if unfinished == 0 and unpublished == 0:
                break
            await asyncio.sleep(0.2)
        async with storage.engine.connect() as conn:
            lags = [float(value) for value in (await conn.execute(_LAGS)).scalars()]
            span = float((await conn.execute(_SPAN)).scalar_one())
    finally:
        await storage.close()
    return {
        "runs": runs,
        "events": len(lags),
        "runs_per_s": round(runs / span, 1) if span else 0.0,
        "lag_p50_ms": round(1000 * _quantile(lags, 0.5), 1),
        "lag_p99_ms": round(1000 * _quantile(lags, 0.99), 1),
        "lag_max_ms": round(1000 * lags[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with postgres("wfc_event_lag") as url:
        asyncio.run(_migrate(url))
        workers = [
            start(
                [sys.executable, str(HERE / "bench_worker.py"), url, f"w{i}", str(args.concurrency)]
            )
            for i in range(args.workers)
        ]
        try:
            result = asyncio.run(_burst(url, args.runs))
        finally:
            stop_all(workers)
    print(json.dumps(result | {"workers": args.workers, "concurrency": args.concurrency}))


if __name__ == "__main__":
    main()
