"""Workers sharing a PostgreSQL database leave created runs to one claim lead: a run costs
one claim however many workers listen, a lead without room passes runs on, and a lead that
stops hands over at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

from tests.databases import open_storage, postgres_database
from tests.kernel.conftest import Script, build_workflows
from wfc.runtime import RunCreate, Status, WorkerHost
from wfc.runtime.adapters.sql import SqlStorage, direct
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.kernel import Kernel
from wfc.runtime.registry import WorkflowMap

DOC = {"text": "the quick brown fox"}
SLOW = timedelta(seconds=60)  # no poll or tick comes during a test: only wakeups move runs
FINISH = timedelta(seconds=20)
_STORAGES: dict[int, SqlStorage] = {}  # each worker's, by id(worker)


@asynccontextmanager
async def _workers(script: Script, count: int, **settings: Any) -> AsyncIterator[list[WorkerHost]]:
    """`count` workers on one fresh database, each with a pool of its own (as processes
    would have), started one after the other so the first takes the claim lead."""
    _STORAGES.clear()
    registry = WorkflowMap(build_workflows(script))
    async with postgres_database() as url:
        storages = [open_storage(url) for _ in range(count)]
        workers = [
            WorkerHost(
                make_kernel(storage, registry),
                worker_id=f"w{n}",
                orchestration_interval=SLOW,
                job_poll_interval=SLOW,
                shutdown_grace=timedelta(seconds=5),
                wakeups=storage.wakeups,
                **settings,
            )
            for n, storage in enumerate(storages)
        ]
        _STORAGES.update(zip(map(id, workers), storages, strict=True))
        try:
            for worker in workers:
                await worker.start()
                await _until(lambda w=worker: w.orchestrator.listening is not None)
            yield workers
        finally:
            for worker in workers:
                await worker.stop()
            for storage in storages:
                await storage.close()


async def _until(condition: Any, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def _lead_and_other(workers: list[WorkerHost]) -> tuple[WorkerHost, WorkerHost]:
    """The worker that took the claim lead, and the other one. The first started usually
    takes it, but on a loaded machine the second's try may come first."""
    await _until(lambda: any(_leads(worker) for worker in workers))
    lead = next(worker for worker in workers if _leads(worker))
    return lead, next(worker for worker in workers if worker is not lead)


def _leads(worker: WorkerHost) -> bool:
    return worker.orchestrator.listening is not None and worker.orchestrator.listening.leading


@contextmanager
def _claims(workers: list[WorkerHost]) -> Iterator[list[str]]:
    """Every claim statement the workers send while the block runs."""
    with ExitStack() as stack:
        sent: list[str] = []
        for worker in workers:
            storage = _STORAGES[id(worker)]
            sent_here = stack.enter_context(direct.watching(storage.engine))
            stack.callback(sent.extend, sent_here)
        claims: list[str] = []
        yield claims
    claims.extend(sql for sql in sent if "SKIP LOCKED" in sql and sql.startswith("UPDATE runs"))


async def _create(kernel: Kernel, key: str) -> str:
    created = await kernel.dispatch(RunCreate(idempotency_key=key, workflow_id="linear", input=DOC))
    return created.workflow_run_id


async def test_a_created_run_is_claimed_once_however_many_workers_listen(
    script: Script,
) -> None:
    async with _workers(script, 3, concurrency=2) as workers:
        await _until(lambda: any(_leads(w) for w in workers))
        # Each worker's first tick claims too: let them all pass before counting (a run
        # created and finished first outlasts them), as under a loaded CI machine one
        # started late was counted once (11 claims).
        await _until(lambda: all(w.stats().orchestration_ticks >= 1 for w in workers))
        warm_up = await _create(workers[0].kernel, "warm-up")
        await wait_for_run(workers[0].kernel, warm_up, timeout=FINISH)
        with _claims(workers) as claims:
            for n in range(10):
                run_id = await _create(workers[0].kernel, f"once-{n}")
                run = await wait_for_run(workers[0].kernel, run_id, timeout=FINISH)
                assert run.status is Status.COMPLETED
        assert sum(_leads(w) for w in workers) == 1
    # One claim per run (all three workers claimed each one before: 30).
    assert len(claims) == 10


async def test_a_lead_without_room_passes_new_runs_on(script: Script) -> None:
    gate = threading.Event()

    def held_split(ctx: Any) -> Any:
        gate.wait(timeout=20)
        return {"words": ["held"]}

    script.then("split", held_split)
    async with _workers(script, 2, concurrency=1) as workers:
        lead, other = await _lead_and_other(workers)
        try:
            held = await _create(lead.kernel, "held")
            await _until(lambda: lead.free_slots() == 0)
            # The lead has no slot for it: without passing it on, it would wait for a poll.
            passed = await _create(lead.kernel, "passed")
            run = await wait_for_run(lead.kernel, passed, timeout=FINISH)
            assert run.status is Status.COMPLETED
            assert _leads(other) and not _leads(lead)  # the lead went where the room is
        finally:
            gate.set()
        assert (await wait_for_run(lead.kernel, held, timeout=FINISH)).status is Status.COMPLETED


async def test_a_lead_that_stops_hands_over_at_once(script: Script) -> None:
    async with _workers(script, 2, concurrency=2) as workers:
        lead, other = await _lead_and_other(workers)
        await lead.stop()
        run_id = await _create(other.kernel, "after-the-lead")
        run = await wait_for_run(other.kernel, run_id, timeout=FINISH)
        assert run.status is Status.COMPLETED
        assert _leads(other)
