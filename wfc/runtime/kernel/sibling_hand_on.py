"""A parallel sibling that finishes hands its worker the next pending sibling of its run.

A narrow group's stages are handed to the worker whose transition opened them
(`open_group` starts their rows and leases their jobs to it); a wide group's
are not, beyond that worker's free slots: each of the rest was dequeued by
some worker, which then read the run and took the run's row lock in a start
transaction of its own, just to mark the row RUNNING. On PostgreSQL with one
worker that was a dequeue and five statements per sibling.

A sibling that finishes before the last holds its run's lock already, in its
outcome's transaction. So when its worker has the slot it is freeing and the
job queue shares that transaction, it leases one due PENDING job of the run
(`JobTransport.dequeue(run_id=…)`, `FOR UPDATE SKIP LOCKED` on PostgreSQL, on
the queues the worker serves and the plan it runs), starts that stage's row
in the same transaction, fenced like any start (`StageFence.startable` at the
leased attempt: a row another delivery started later, or that finished, is
left as it is), and passes the job to its worker once the transaction has
committed. The handed execution finds its row RUNNING at its own attempt and
records no start (`execute._started_for`); its outcome is fenced as any
(RUNNING at that attempt), so a worker that loses it meanwhile is a ghost.

The handed execution also starts warm (`kernel.warm`): a sibling's context is the
outputs of the groups before its own, which the finishing sibling read before its
body ran and holds as stored (`Execution.stored_outputs`), and its rows are those
groups' rows plus the one just started. So it reads neither its run nor the earlier
outputs again: on PostgreSQL with 4 workers those two reads were 2 of a fan run's
68 statements per handed sibling, each a round trip and a row decoded on a worker
short of CPU. The run is the one locked here (RUNNING); the earlier groups' rows
cannot have moved since the finishing sibling read them, as its own fenced write
just passed (a rerun or an adoption would have replaced its row). Registered after the commit,
keyed by the handed attempt, before the job reaches its slot.

Locks: the run's row (held already), then the job's, taken with SKIP LOCKED,
so the lease never waits and cannot close a wait cycle; then the started
stage's row, which every other writer of a plain stage's row takes only after
the run's. The lease's statement also completes the finishing sibling's own job
(`dequeue(completing=)`, fenced on the attempt it holds, as `complete` is), a
row this worker holds the lease of: one round trip fewer under the run's lock. If the transaction rolls back, the lease and the start roll back
with it; if the worker dies before running the job, its lease is reaped like
any other.
"""

from __future__ import annotations

from wfc.runtime.copies import changed
from wfc.runtime.handoff import JobTaker, current_taker
from wfc.runtime.job_records import JobRecord
from wfc.runtime.kernel.deps import AfterCommit, Deps, Unit
from wfc.runtime.kernel.rows import new_stage_row, stage_started
from wfc.runtime.kernel.stage_outcome import Execution
from wfc.runtime.kernel.warm import WarmStart
from wfc.runtime.records import RunRecord, StageChanges, StageFence, StageRecord, Status
from wfc.runtime.workflow import Workflow


async def hand_on_sibling(unit: Unit, run: RunRecord, ex: Execution) -> bool:
    """In the outcome transaction of `ex`, a finishing sibling, under its run's lock
    (`run` as locked): lease the next due job of the run to this worker and start its
    stage, warm, if it is a plain stage of the same group; whether a job was handed.
    Nothing is done unless the job queue shares the transaction and a taker has a slot."""
    deps, group = ex.deps, ex.row.execution_group
    taker = current_taker()
    workflow = deps.registry.get(ex.cmd.workflow_id)
    if taker is None or workflow is None or not unit.shared or taker.free_slots() < 1:
        return False
    siblings = workflow.group(group)
    queues = sorted({queue for queue in map(workflow.queue_of, siblings) if taker.serves(queue)})
    if not queues:
        return False
    # The finishing sibling's own job is completed by the lease's statement (fenced on its
    # attempt), one round trip fewer while the run's row is locked.
    job_id = unit.take_completing()
    leased = await deps.jobs.dequeue(
        1,
        run_id=run.id,
        plans=[workflow.plan.fingerprint],
        queues=queues,
        limited=False,
        completing=None if job_id is None else (job_id, ex.cmd.attempt),
    )
    if not leased:
        return False
    job = leased[0]
    if job.stage_id in siblings and _plain(workflow, job.stage_id):
        now = deps.clock.now()
        started: StageChanges = {
            "status": Status.RUNNING,
            "started_at": now,
            "attempt": job.attempt,
        }
        create = changed(new_stage_row(deps, run, workflow, job.stage_id, generation=0), started)
        row = await unit.db.start_stage(create, started, StageFence.startable(job.attempt))
        if row is not None:
            unit.emit(stage_started(row, now))
            unit.after_commit(_warm(deps, run, ex, row))
    unit.after_commit(_take(taker, job))
    return True


def _warm(deps: Deps, run: RunRecord, ex: Execution, started: StageRecord) -> AfterCommit:
    """After the commit: the handed sibling's `WarmStart`, what its pre-flight would read
    (the run, the rows of the groups before its own and its own row as started, and the
    outputs of those groups as they were stored: `ex.stored_outputs`, which each reader
    parses or copies for itself as it reads one (`StageOutputs`); without it, the outputs
    are read)."""
    earlier = [row for row in ex.known_rows if row.execution_group < started.execution_group]
    warm = WarmStart(run=run, rows=[*earlier, started], outputs=ex.stored_outputs or {})

    async def register() -> None:
        deps.warm.put(started, warm)

    return register


def _plain(workflow: Workflow, stage_id: str) -> bool:
    """A stage whose start is a row marked RUNNING: not mapped, not a child run, not a
    sleep or a signal wait (those start their own way)."""
    stage = workflow.stage(stage_id)
    return stage is not None and stage.map is None and stage.child is None and not stage.builtin


def _take(taker: JobTaker, job: JobRecord) -> AfterCommit:
    async def take() -> None:
        taker.take([job], more_queued=False)

    return take
