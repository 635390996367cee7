"""A completed item that is not the last of its pass: recorded in one write, its run unlocked.

Most items of a map only need to say "done, here is my output, queue the next
one": nothing about the run changes, and no event is due. For those the kernel
asks the store to write it all at once without the run's lock
(`Persistence.hand_on_item`): the item's row fenced on its delivery, the count
on its stage's row fenced on the stage still RUNNING at the pass the item was
queued for, the item's job completed fenced on its lease, and the next item's
job queued (handed to this worker when it has a free slot): one statement on
PostgreSQL, one transaction on SQLite. A store that cannot (memory), or a
write whose fence did not hold, answers None and the
item is recorded the long way (`items.record_outcome`), which also takes the
last item (the gather) and the items that report progress.

The next item's execution, handed to this worker, then starts from what this
one started with (`WarmStarts.put_item`) instead of reading the run again: the
write just proved the stage RUNNING at this pass, and whatever moves it on
after (a cancel, a rerun) is caught by the next item's own fenced writes: its
start is fenced on the stage's row too (`StageFence.item_startable`), so it
writes no RUNNING row into a stage that ended or moved on since.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from wfc.plan import PlanStage
from wfc.runtime.commands import JobExecute, JobExecuteResult, RunTransitionResult
from wfc.runtime.job_records import ItemHandOn
from wfc.runtime.kernel.deps import Deps, KeyCompletion
from wfc.runtime.kernel.invoke import Produced, Report
from wfc.runtime.kernel.mapping import item_spec, reports_progress
from wfc.runtime.kernel.warm import WarmStart
from wfc.runtime.records import ItemRecord, RunRecord, StageRecord
from wfc.runtime.workflow import Workflow

_NEXT = -1  # the next item's index in its job's payload until the store writes it


async def hand_on(
    deps: Deps,
    workflow: Workflow,
    run: RunRecord,
    rows: list[StageRecord],
    row: StageRecord,
    stage: PlanStage,
    cmd: JobExecute,
    key: KeyCompletion,
    item: ItemRecord,
    report: Report,
    outcome: Produced,
    started_at: datetime,
) -> JobExecuteResult | None:
    """The result of item `item`, recorded and handed on in one write; None when it was not
    (nothing written: the caller records it under the run's lock)."""
    if (
        cmd.job_id is None  # its job is not fenced by its lease, but by an idempotency key
        or key.key is not None
        or not deps.shared_transactions  # the jobs are not in the store's transaction
        or row.items_queued != row.items_total  # a rerun's pass: its next index is stored
        or reports_progress(item.item_index, row.items_total)  # an event, after the run's
    ):
        return None
    now = deps.clock.now()
    spec = item_spec(
        run,
        workflow,
        stage.id,
        _NEXT,
        cmd.generation,
        config=cmd.config,
        concurrency_key=cmd.concurrency_key,
    )
    write = ItemHandOn(
        run_id=run.id,
        record_id=row.id,
        generation=cmd.generation,
        item_id=item.id,
        attempt=cmd.attempt,
        output=outcome.output,
        metrics=dict(report.metrics),
        duration_ms=max(int((now - started_at) / timedelta(milliseconds=1)), 0),
        job_id=cmd.job_id,
        job_attempt=cmd.attempt,
        next_job=spec,
        next_job_id=deps.ids.new_id(),
        now=now,
    )
    index = await deps.persistence.hand_on_item(write, deps.jobs)
    if index is None:
        return None
    deps.warm.put_item(stage.id, index, 1, WarmStart(run=run, rows=rows, outputs={}))
    return JobExecuteResult(
        outcome="completed",
        output=outcome.output,
        transition=RunTransitionResult(action="noop"),
        job_completed=True,
    )
