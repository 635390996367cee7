"""Waiting for a run served by a host shared by many callers, as a service does (one
`WorkerHost` started with the app, `run_and_wait(..., host=host)` per request): the call
returns as its run ends, not at its next poll, which was 50 ms after a run of a few ms
(on memory, SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from tests.hosts.conftest import Backend
from tests.kernel.children import Faults, doubler, relay
from wfc.runtime import RunCancel, RunCreate, Status, WorkerHost, run_and_wait
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.kernel import Kernel
from wfc.runtime.registry import WorkflowMap

DOC = {"text": "the quick brown fox"}
SLOW = timedelta(seconds=60)  # longer than any test waits: finishing proves it was not polled
WITHIN = timedelta(seconds=20)


@asynccontextmanager
async def _serving(kernel: Kernel) -> AsyncIterator[WorkerHost]:
    """A host started with the app, as a service has one, looking for work every 50 ms."""
    shared = WorkerHost(
        kernel,
        worker_id="shared",
        concurrency=4,
        orchestration_interval=timedelta(milliseconds=50),
        job_poll_interval=timedelta(milliseconds=50),
    )
    await shared.start()
    try:
        yield shared
    finally:
        await shared.stop()


@pytest.fixture
async def host(backend: Backend) -> AsyncIterator[WorkerHost]:
    async with _serving(backend.kernel()) as shared:
        yield shared


async def test_run_and_wait_on_a_shared_host_returns_as_its_run_ends(
    host: WorkerHost,
) -> None:
    waits = [
        run_and_wait(host.kernel, "linear", DOC, host=host, poll_interval=SLOW, timeout=WITHIN)
        for _ in range(3)
    ]
    runs = await asyncio.wait_for(asyncio.gather(*waits), WITHIN.total_seconds())
    assert [run.status for run in runs] == [Status.COMPLETED] * 3
    assert len({run.run_id for run in runs}) == 3


async def test_run_and_wait_through_another_kernel_s_host_returns_as_its_run_ends(
    backend: Backend,
) -> None:
    """The caller's kernel is not the host's (two made on one storage): the host's kernel,
    which ends the run, tells the waiter, not the caller's (on memory, nothing else would)."""
    async with _serving(backend.kernel()) as shared:
        run = await asyncio.wait_for(
            run_and_wait(
                backend.kernel(), "linear", DOC, host=shared, poll_interval=SLOW, timeout=WITHIN
            ),
            WITHIN.total_seconds(),
        )
    assert run.status is Status.COMPLETED


async def test_wait_for_run_given_its_host_returns_as_the_run_ends(host: WorkerHost) -> None:
    created = await host.kernel.dispatch(
        RunCreate(idempotency_key="waited", workflow_id="linear", input=DOC)
    )
    run = await asyncio.wait_for(
        wait_for_run(
            host.kernel, created.workflow_run_id, host=host, poll_interval=SLOW, timeout=WITHIN
        ),
        WITHIN.total_seconds(),
    )
    assert run.status is Status.COMPLETED


async def test_the_host_keeps_a_run_s_signal_only_while_someone_waits(host: WorkerHost) -> None:
    """A long-lived host serves many runs: what it keeps per waited run must go with
    the waiter, or it grows by a run per request."""
    run = await run_and_wait(host.kernel, "linear", DOC, host=host, timeout=WITHIN)
    assert run.status is Status.COMPLETED
    gc.collect()
    assert run.run_id not in host._slots.run_ends
    assert len(host._slots.run_ends) == 0


async def test_a_run_ended_by_another_run_s_job_wakes_its_waiter(backend: Backend) -> None:
    """A parent whose stage runs a child run ends in the transaction of the child's last
    job, a job of another run: its waiter is told all the same (as for a run ended by a
    poll, a signal or a cancel made in this process)."""
    kernel = make_kernel(
        backend.storage, WorkflowMap([doubler(Faults()), relay("relay", "doubler")])
    )
    async with _serving(kernel) as shared:
        run = await asyncio.wait_for(
            run_and_wait(
                kernel, "relay", {"n": 4}, host=shared, poll_interval=SLOW, timeout=WITHIN
            ),
            WITHIN.total_seconds(),
        )
    assert run.status is Status.COMPLETED
    assert run.output == {"n": 8}
    # The stopped host listens no more; the kernel's own waiters do.
    assert kernel.deps.run_end_listeners == [kernel.deps.run_end_waits.run_ended]


async def test_wait_for_run_without_a_host_returns_as_this_process_ends_the_run(
    backend: Backend,
) -> None:
    """No host here: the run is ended by a command this process's kernel runs (a cancel),
    which tells the kernel's waiters after its commit (`Deps.run_end_waits`)."""
    kernel = backend.kernel()
    created = await kernel.dispatch(
        RunCreate(idempotency_key="unserved", workflow_id="linear", input=DOC)
    )
    looked = asyncio.Event()
    waiting = asyncio.create_task(
        wait_for_run(
            kernel,
            created.workflow_run_id,
            poll_interval=SLOW,
            on_change=lambda _run: looked.set(),
        )
    )
    await looked.wait()
    await kernel.dispatch(RunCancel(workflow_run_id=created.workflow_run_id))
    run = await asyncio.wait_for(waiting, WITHIN.total_seconds())
    assert run.status is Status.CANCELLED
