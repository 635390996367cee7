"""SQL statements per stage execution, counted as `runtime.py` and the scaling table report them.

Each counted on one run, stage by stage, on the SQL sent through the storage's
engine (`direct.watching`): a job dequeued, or handed to the worker that ran the
stage before (`handoff`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shapes import INPUT, workflows

from wfc.runtime.adapters.sql import direct, open_storage
from wfc.runtime.commands import RunClaimPending, RunCreate
from wfc.runtime.handoff import handing_off_to
from wfc.runtime.hosts import make_kernel, process_job
from wfc.runtime.records import Status
from wfc.testing import SlotTaker


async def statements_per_stage(url: str, shape: str = "seq3") -> dict[str, float]:
    """Database round trips per stage execution of a `shape` run, statements with BEGIN/COMMIT
    (explicit on the job's pinned connection) among them, two ways: each job `dequeued`
    (dequeue → execute → transition → complete), and each next job `handed` to the worker
    that finished the stage before, which starts it in the transition."""
    storage = open_storage(url)
    kernel = make_kernel(storage, workflows())

    async def one_run(key: str, taker: SlotTaker | None) -> list[int]:
        """The statements of each stage execution of one run, in order."""
        created = await kernel.dispatch(
            RunCreate(idempotency_key=key, workflow_id=shape, input=INPUT)
        )
        await kernel.dispatch(RunClaimPending(worker_id="count"))
        per_stage = []
        while True:
            with direct.watching(storage.engine) as sent:
                leased = (taker.taken if taker else []) or await storage.jobs.dequeue(1)
                if not leased:
                    break
                if taker is not None:
                    taker.taken = []
                    with handing_off_to(taker):
                        await process_job(kernel, leased[0])
                else:
                    await process_job(kernel, leased[0])
            per_stage.append(len(sent))
        run = await storage.persistence.get_run(created.workflow_run_id)
        assert run is not None and run.status is Status.COMPLETED
        return per_stage

    try:
        dequeued = await one_run(f"count-{shape}-dequeued", None)
        handed = (await one_run(f"count-{shape}-handed", SlotTaker(1)))[1:]  # the first is dequeued
        return {"dequeued": mean(dequeued), "handed": mean(handed)}
    finally:
        await storage.close()
