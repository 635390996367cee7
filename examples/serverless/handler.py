"""AWS Lambda functions for wfc's serverless host: one for SQS job messages, one for cron.

Deploy both with the compiled workflow packages beside them and set
`WFC_DATABASE_URL` (PostgreSQL in production) and `WFC_PLANS` (comma-separated
package directories or plan.json paths; default: the documents example).

- `sqs_handler`: each SQS record's body is a `JobMessage` (JSON, camelCase).
  Completed and suspended jobs are acknowledged; failed ones are reported in
  `batchItemFailures` so SQS redelivers them (partial batch responses).
- `cron_handler`: an EventBridge schedule (e.g. every minute) runs one
  maintenance tick (claim new runs, poll suspended stages, reap leases and
  stuck runs, flush the outbox), then drains up to `WFC_DRAIN_JOBS` due jobs
  from the SQL queue. With only this function deployed, runs still finish.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from wfc.runtime import ServerlessHost
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.hosts import make_kernel
from wfc.runtime.registry import load_registry

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
DEFAULT_PLANS = str(HERE.parent / "documents" / "document_processor")


@asynccontextmanager
async def serverless_host() -> AsyncIterator[ServerlessHost]:
    """A host over the configured database, opened for one invocation."""
    storage = open_storage(os.environ.get("WFC_DATABASE_URL"), worker_id="lambda")
    try:
        await storage.prepare()
        registry = load_registry(os.environ.get("WFC_PLANS", DEFAULT_PLANS).split(","))
        yield ServerlessHost(make_kernel(storage, registry), worker_id="lambda")
    finally:
        await storage.close()


def _run(work: Callable[[ServerlessHost], Awaitable[T]]) -> T:
    async def main() -> T:
        async with serverless_host() as host:
            return await work(host)

    return asyncio.run(main())


def sqs_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Execute each job message; report the failed ones for redelivery."""

    async def handle(host: ServerlessHost) -> list[dict[str, str]]:
        failures = []
        for record in event.get("Records", []):
            outcome = await host.handle_job(record["body"])
            if outcome.outcome == "failed":
                failures.append({"itemIdentifier": record["messageId"]})
        return failures

    return {"batchItemFailures": _run(handle)}


def cron_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """One maintenance tick, then drain due jobs; returns what it did (logged by Lambda)."""
    max_jobs = int(os.environ.get("WFC_DRAIN_JOBS", "25"))

    async def tick(host: ServerlessHost) -> dict[str, Any]:
        result = await host.run_maintenance_tick()
        drained = await host.process_available_jobs(max_jobs=max_jobs)
        return {
            "claimed": result.claimed,
            "suspended_checked": result.suspended_checked,
            "stale_released": result.stale_released,
            "events_flushed": result.events_flushed,
            "stuck_reaped": result.stuck_reaped,
            "errors": result.errors,
            "processed": drained.processed,
            "succeeded": drained.succeeded,
            "failed": drained.failed,
        }

    summary = _run(tick)
    print(json.dumps(summary))
    return summary
