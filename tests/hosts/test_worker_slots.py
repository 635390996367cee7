"""A worker's job slots and its lease loop (`hosts.job_slots`, `hosts.lease_loop`), seen
through `WorkerHost` on memory, SQLite and PostgreSQL: a finishing slot runs the next
stage's job itself but not once the worker stops, and a worker that gave up leases
nothing more."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from tests.hosts.conftest import Backend
from tests.hosts.test_worker_host import DOC, host
from wfc.runtime import RunCreate, Status
from wfc.runtime.commands import RunClaimPending
from wfc.runtime.hosts import wait_for_run
from wfc.runtime.job_records import JobRecord


async def test_a_finishing_slot_runs_the_next_stage_itself(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A linear run's three jobs take one slot: the first is leased into it, and each
    stage's slot keeps the job its outcome queued, rather than start a slot per job."""
    worker = host(backend, concurrency=2)
    slots = worker._slots
    started: list[str] = []
    start = slots.start

    def counted(job: JobRecord) -> None:
        started.append(job.stage_id)
        start(job)

    monkeypatch.setattr(slots, "start", counted)
    await worker.start()
    try:
        created = await worker.kernel.dispatch(
            RunCreate(idempotency_key="one-slot", workflow_id="linear", input=DOC)
        )
        worker.wake_claims()
        run = await wait_for_run(
            worker.kernel, created.workflow_run_id, timeout=timedelta(seconds=20)
        )
    finally:
        await worker.stop()
    assert run.status is Status.COMPLETED
    assert worker.stats().jobs_processed == 3
    assert started == ["split"]


async def test_a_worker_that_gave_up_leases_nothing_more(backend: Backend) -> None:
    worker = host(backend)
    await worker.start()
    try:
        worker.give_up("replace me")
        other = backend.kernel()  # another worker's: its claim queues the first stage
        created = await other.dispatch(
            RunCreate(idempotency_key="after-giving-up", workflow_id="linear", input=DOC)
        )
        await other.dispatch(RunClaimPending(worker_id="other"))
        worker.wake_jobs()
        await asyncio.sleep(0.3)
        jobs = await backend.storage.jobs.jobs_of_run(created.workflow_run_id)
    finally:
        await worker.stop()
    assert [(j.stage_id, j.status) for j in jobs] == [("split", Status.PENDING)]
    assert worker.stats().gave_up == "replace me" and worker.stats().jobs_processed == 0


async def test_a_slot_stopped_after_its_next_job_was_handed_gives_it_back(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """`stop` can come after a stage's outcome handed its slot the next job and before the
    slot took it (here, as the slot logs the stage it finished): the slot runs no more, and
    the job goes back PENDING for another worker."""
    worker = host(backend)

    class StopAfterSplit(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "stage_id", None) == "split":
                worker._stopping.set()  # as `stop` does first
                stopping.append(asyncio.ensure_future(worker.stop()))

    stopping: list[asyncio.Future[None]] = []
    caplog.set_level(logging.INFO, logger="wfc.worker")
    handler = StopAfterSplit()
    logging.getLogger("wfc.worker").addHandler(handler)
    try:
        await worker.start()
        created = await worker.kernel.dispatch(
            RunCreate(idempotency_key="stopped-between", workflow_id="linear", input=DOC)
        )
        worker.wake_claims()
        for _ in range(500):
            if stopping:
                break
            await asyncio.sleep(0.01)
        await asyncio.gather(*stopping)
    finally:
        logging.getLogger("wfc.worker").removeHandler(handler)
        await worker.stop()
    jobs = await backend.storage.jobs.jobs_of_run(created.workflow_run_id)
    statuses = {j.stage_id: j.status for j in jobs}
    assert statuses == {"split": Status.COMPLETED, "count": Status.PENDING}
    assert worker.stats().jobs_processed == 1


async def test_a_claim_that_took_the_last_pending_run_leaves_no_claim_for_its_freed_slot(
    backend: Backend,
) -> None:
    """A worker with one slot claims the only PENDING run: its claim filled the slots, but
    saw no other run waiting, so it leaves nothing for a freed slot to claim (that claim
    found nothing, and on PostgreSQL one was counted against each run). Watched where it
    is decided, at each `slot_freed`, once the worker's first claims (its first tick's,
    its claim lead's) are over: one woken while its slot is busy says runs may wait, as it
    cannot know. Not on SQLite, whose file tells no create from any other commit: its
    claims wake at any change, a gap apart (`sqlite_wakeups.WakeRule`)."""
    if backend.name == "sqlite":
        pytest.skip("SQLite's wakeups claim at any change of the file")
    worker = host(backend, concurrency=1)
    orchestrator = worker.orchestrator
    claims = {"sent": 0, "returned": 0}
    dispatch = worker.kernel.dispatch

    async def counted(command: object) -> object:
        claiming = isinstance(command, RunClaimPending)
        claims["sent"] += claiming
        try:
            return await dispatch(command)  # type: ignore[call-overload]
        finally:
            claims["returned"] += claiming

    def settled() -> bool:
        listening = orchestrator.listening
        return (
            claims["returned"] >= 1
            and claims["sent"] == claims["returned"]
            and not (orchestrator._claim_now or orchestrator._runs_waiting)
            and (backend.wakeups is None or (listening is not None and listening.leading))
        )

    runs_said_to_wait: list[bool] = []
    slot_freed = orchestrator.slot_freed

    def watched() -> None:
        runs_said_to_wait.append(orchestrator.claims_waiting)
        slot_freed()

    worker.kernel.dispatch = counted  # type: ignore[assignment,method-assign]
    orchestrator.slot_freed = watched  # type: ignore[method-assign]
    await worker.start()
    try:
        await _until(settled)
        await asyncio.sleep(0.05)
        await _until(settled)
        other = backend.kernel()  # another process's: its create claims nothing here
        created = await other.dispatch(
            RunCreate(idempotency_key="the-only-one", workflow_id="linear", input=DOC)
        )
        if backend.wakeups is None:  # (PostgreSQL's lead is told by a NOTIFY)
            worker.wake_claims()
        run = await wait_for_run(other, created.workflow_run_id, timeout=timedelta(seconds=20))
        await _until(lambda: worker.free_slots() == 1)  # its slot freed, after the run's end
    finally:
        await worker.stop()
    assert run.status is Status.COMPLETED
    assert runs_said_to_wait and not any(runs_said_to_wait)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")
