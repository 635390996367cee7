"""`stage.pollSuspended` for the items of a mapped async stage.

An item that suspended is claimed and checked as a suspended stage is
(`wfc.runtime.kernel.poll`): the claim moves its next poll past the check and
its version fences what the check leads to (`StageFence.polled`). A ready or
failed item is recorded as a delivered one is (`items.record_outcome`): counted
on its stage, the next item queued, the stage ended by the last.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from wfc.runtime.kernel.deps import Deps, atomic
from wfc.runtime.kernel.invoke import FALLBACK_POLL, Failure, NotYet, Produced, run_check
from wfc.runtime.kernel.items import (
    Refused,
    Writer,
    log_item_failure,
    record_outcome,
    storable_item_report,
)
from wfc.runtime.records import ItemChanges, ItemRecord, StageFence, Status
from wfc.runtime.storable import unstorable_part

Verdict = tuple[str, datetime | None]


async def poll_item(deps: Deps, item: ItemRecord) -> Verdict:
    """Check one claimed item; the verdict, and when it is due again if it still waits."""
    fence = StageFence.polled(item.version)
    found = await deps.persistence.run_with_stages(item.run_id)
    workflow = None if found is None else deps.registry.get(found[0].workflow_id)
    stage = None if workflow is None else workflow.stage(item.stage_id)
    if found is None or workflow is None or stage is None:
        return "skipped", None
    run, rows = found
    row = next((r for r in rows if r.stage_id == item.stage_id), None)
    now = deps.clock.now()
    if (
        run.status is not Status.RUNNING
        or row is None
        or row.status is not Status.RUNNING
        or row.generation != item.generation
    ):
        cancelled: ItemChanges = {"status": Status.CANCELLED, "completed_at": now}
        await deps.persistence.update_item(item.id, cancelled, fence=fence)
        return "skipped", None
    state = dict(item.suspended_state or {})
    report = storable_item_report(
        stage, item.item_index, await run_check(deps, workflow, run, row, state, item.item_index)
    )
    outcome = report.outcome
    now = deps.clock.now()
    if isinstance(outcome, NotYet):
        problem = unstorable_part(state)
        if problem is not None:
            outcome = Failure(
                error=f"UnstorableOutput: Item {item.item_index} of stage {stage.id} kept a "
                f"state no database can store ({problem})",
                retryable=False,
            )
        elif item.max_wait_until is not None and now >= item.max_wait_until:
            outcome = Failure(
                error=f"Item {item.item_index} of stage {stage.id} exceeded max wait "
                f"({item.max_wait_until.isoformat()}) while suspended",
                retryable=False,
            )
    if isinstance(outcome, NotYet):
        interval = outcome.next_check_in or (
            timedelta(milliseconds=item.poll_interval_ms)
            if item.poll_interval_ms
            else FALLBACK_POLL
        )
        waiting: ItemChanges = {"next_poll_at": now + interval, "suspended_state": state}
        if await deps.persistence.update_item(item.id, waiting, fence=fence) is None:
            return "skipped", None
        return "waiting", now + interval
    assert isinstance(outcome, Produced | Failure)
    if isinstance(outcome, Failure):
        outcome = replace(outcome, retryable=False)
    try:
        async with atomic(deps, deps.ids.new_id()) as unit:
            writer = Writer(fence=fence, generation=item.generation, config=run.config)
            started = item.started_at or item.created_at
            await record_outcome(
                deps, unit, workflow, run, stage, row.id, item, writer, report, outcome, started
            )
    except Refused:
        return "skipped", None
    if isinstance(outcome, Failure):
        await log_item_failure(deps, run.id, row.id, item.item_index, "ERROR", outcome)
    await _close_parked_job(deps, item, outcome)
    return ("resumed" if isinstance(outcome, Produced) else "failed"), None


async def _close_parked_job(deps: Deps, item: ItemRecord, outcome: Produced | Failure) -> None:
    """Close the item's parked job (best effort: a parked job is never dequeued)."""
    try:
        for job in await deps.jobs.jobs_of_run(item.run_id):
            parked = job.status is Status.SUSPENDED and job.stage_id == item.stage_id
            if not parked or job.payload.get("item") != item.item_index:
                continue
            if isinstance(outcome, Failure):
                await deps.jobs.fail(job.id, outcome.error, retry_at=None)
            else:
                await deps.jobs.complete(job.id)
    except Exception:  # a parked job left behind is harmless
        pass
