"""A kernel for real use: storage ports, a workflow registry, the system clock, plugins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from wfc.runtime.adapters.memory import SystemClock, UuidIds
from wfc.runtime.kernel import Kernel
from wfc.runtime.plugins import Plugin, PluginRunner
from wfc.runtime.ports import Clock, IdSource, Storage
from wfc.runtime.registry import WorkflowRegistry
from wfc.runtime.workflow import Workflow

DEFAULT_STAGE_TIMEOUT = timedelta(hours=1)
"""The timeout of a stage whose plan sets none, under `wfc worker` and `wfc run`."""


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
        # Optional, as `Storage` says: the storage's waiters, woken across processes.
        run_end_waits=getattr(storage, "run_end_waits", None),
    )


def with_default_stage_timeout(workflow: Workflow, timeout: timedelta | None) -> Workflow:
    """`workflow` with `timeout` for each stage whose plan sets no `timeout`.

    A stage without a timeout that hangs holds its slot, and its thread, for ever.
    This is the host's default, not the plan's: the plan's fingerprint is kept (it names
    what was compiled, and runs created from it must still match), and a plan that sets
    a timeout keeps its own. `None` leaves the workflow as it is."""
    if timeout is None or all(stage.timeout_ms is not None for stage in workflow.plan.stages):
        return workflow
    ms = max(1, int(timeout / timedelta(milliseconds=1)))
    stages = tuple(
        stage if stage.timeout_ms is not None else stage.model_copy(update={"timeout_ms": ms})
        for stage in workflow.plan.stages
    )
    plan = workflow.plan.model_copy(update={"stages": stages})
    return Workflow(plan, workflow.implementations, input_model=workflow.input_model)
