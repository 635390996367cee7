"""Observability for a worker process: what `wfc worker --otel / --metrics-port` turns on.

Kept apart from the worker command so the command stays a list of options,
and from `setup` so the SDK wiring does not know about storage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from wfc.observability.setup import Telemetry


def worker_telemetry(traces: bool, metrics_port: int | None, metrics_host: str) -> Telemetry | None:
    """Set observability up for a worker, or None when neither switch is on (then nothing
    of OpenTelemetry is imported, and the hook stays the no-op one)."""
    if not traces and metrics_port is None:
        return None
    from wfc.observability.setup import configure

    return configure(traces=traces, metrics_port=metrics_port, metrics_host=metrics_host)


@contextlib.asynccontextmanager
async def queue_sampling(
    telemetry: Telemetry | None, engine: AsyncEngine, queues: Sequence[str]
) -> AsyncIterator[None]:
    """Sample the job queue for the queue gauges while the block runs (nothing without
    telemetry); the worker's own `queues` are reported even while empty."""
    if telemetry is None:
        yield
        return
    telemetry.observer.instruments.queues.watch(queues)
    from wfc.observability.queues import sample_queues
    from wfc.runtime.adapters.memory import SystemClock

    task = asyncio.create_task(
        sample_queues(engine, telemetry.observer.instruments.queues, SystemClock())
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
