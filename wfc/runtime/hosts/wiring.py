"""A kernel for real use: storage ports, a workflow registry, the system clock, plugins."""

from __future__ import annotations

from collections.abc import Sequence

from wfc.runtime.adapters.memory import SystemClock, UuidIds
from wfc.runtime.kernel import Kernel
from wfc.runtime.plugins import Plugin, PluginRunner
from wfc.runtime.ports import Clock, IdSource, Storage, WorkflowRegistry


def make_kernel(
    storage: Storage,
    registry: WorkflowRegistry,
    *,
    plugins: Sequence[Plugin] = (),
    clock: Clock | None = None,
    ids: IdSource | None = None,
) -> Kernel:
    """The kernel a worker, `wfc run` or a web app uses: events go to `plugins` (through
    the outbox, with retries and a DLQ); with none they are published and dropped."""
    return Kernel(
        persistence=storage.persistence,
        blobs=storage.blobs,
        jobs=storage.jobs,
        events=PluginRunner(plugins),
        clock=clock or SystemClock(),
        ids=ids or UuidIds(),
        registry=registry,
        ai_calls=storage.ai_calls,
        pinning=storage.pinning,
        shared_transactions=storage.shared_transactions,
    )
