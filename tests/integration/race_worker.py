"""A worker process for the race tests: drain jobs or pending runs, print what it took."""

from __future__ import annotations

import asyncio
import json
import sys

from wfc.runtime.adapters.sql import open_storage


async def drain_jobs(url: str, worker: str) -> list[str]:
    storage = open_storage(url, worker_id=worker)
    taken: list[str] = []
    try:
        idle = 0
        while idle < 3:
            batch = await storage.jobs.dequeue(5)
            if not batch:
                idle += 1
                await asyncio.sleep(0.05)
                continue
            idle = 0
            for job in batch:
                taken.append(job.id)
                await storage.jobs.complete(job.id)
    finally:
        await storage.close()
    return taken


async def drain_runs(url: str, worker: str) -> list[str]:
    storage = open_storage(url, worker_id=worker)
    taken: list[str] = []
    try:
        while (claim := await storage.persistence.claim_next_pending_run()) is not None:
            taken.append(claim.run.id)
    finally:
        await storage.close()
    return taken


def main() -> None:
    mode, url, worker = sys.argv[1:4]
    drain = drain_jobs if mode == "jobs" else drain_runs
    print(json.dumps(asyncio.run(drain(url, worker))))


if __name__ == "__main__":
    main()
