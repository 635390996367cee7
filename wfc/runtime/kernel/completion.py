"""A completed stage's outcome and its run's transition, in one transaction.

`execute` runs a stage's body; when its delivery asks for the transition
(`JobExecute.transition`), the completion is recorded here with what follows it:
the run's lock and the fenced write of the stage's outcome, the output stored, the
next group opened or the run ended (`decide_next`), the leased job completed, and,
when the run ends and the worker left runs PENDING for want of room, the next one
claimed for the slot it frees. A worker so commits once per stage.
"""

from __future__ import annotations

import logging
from typing import Any

from wfc.errors import ExpectationFailed, RecordNotFoundError
from wfc.runtime.commands import JobExecuteResult, RunTransitionResult
from wfc.runtime.events import StageCompleted
from wfc.runtime.handoff import NextRunTaker, next_run_taker
from wfc.runtime.kernel.claim import ClaimAtCreate, ClaimAtOutcomeFailed, start_claimed
from wfc.runtime.kernel.deps import Deps, Unit, atomic
from wfc.runtime.kernel.rows import refresh_run_totals, save_output, warm_up
from wfc.runtime.kernel.sibling_hand_on import hand_on_sibling
from wfc.runtime.kernel.stage_outcome import (
    Execution,
    Unwritten,
    discarded,
    emit_outcome,
    produced_text,
)
from wfc.runtime.kernel.transition import NOOP, NeedJobs, decide_next
from wfc.runtime.prevalidated import maker
from wfc.runtime.records import RunRecord, StageChanges, StageFence, StageRecord

log = logging.getLogger("wfc.kernel")
# Built from values of its fields' types: not validated again (`wfc.runtime.prevalidated`).
_RESULT = maker(JobExecuteResult)


async def commit_completion_and_transition(
    ex: Execution, changes: StageChanges, output: Any, event: StageCompleted
) -> JobExecuteResult:
    """Record the completion and run the run's transition in one transaction.

    The run's row is locked first (its version bumped, in the statement that
    writes the stage's outcome), so transitions of one run queue up behind
    each other, and the stages are read in a later statement, after the lock
    is held. On PostgreSQL (READ COMMITTED) that
    order is what makes it safe: two parallel siblings finishing at once
    would otherwise each read the other as still RUNNING, both do nothing,
    and leave the run stuck. Locking the run before the stage also matches
    the order `run.cancel` takes them in, so the two cannot deadlock.

    The output is stored once the fenced write has passed, never before: a
    ghost's output never replaces the committed one. When the blob store and
    the job queue share the transaction, the output is stored and the leased
    job (`cmd.job_id`) completed in it too: a stage then costs one commit, and
    its outcome, output, job and the next group's jobs become visible together
    or not at all.

    A ghost (the fenced write refused: the run stopped, or another delivery owns the
    stage) rolls back the moment its write finds nothing to write, and is told why
    afterwards (`Discarded`): its transaction holds the run's lock until it ends, and
    a sibling's outcome waits for that.
    """
    try:
        return await _commit(ex, changes, output, event)
    except Unwritten:
        raise await discarded(ex) from None


async def _commit(
    ex: Execution, changes: StageChanges, output: Any, event: StageCompleted
) -> JobExecuteResult:
    """`commit_completion_and_transition` but for a ghost's reason: predicted first for a
    stage alone in its group, then reading; and alone once more when its claim failed."""
    if ex.alone:
        try:
            return await _completion_and_transition(ex, changes, output, event, predict=True)
        except ExpectationFailed:  # the run moved since the stage started: read what it is
            ex.key.completed = False  # in the transaction that wrote nothing
        except ClaimAtOutcomeFailed:
            return await _without_claim(ex, changes, output, event)
    try:
        return await _completion_and_transition(ex, changes, output, event, predict=False)
    except ClaimAtOutcomeFailed:
        return await _without_claim(ex, changes, output, event)


async def _without_claim(
    ex: Execution, changes: StageChanges, output: Any, event: StageCompleted
) -> JobExecuteResult:
    """The outcome again, alone, after the claim its transaction made raised and rolled it
    back whole (no savepoint: a PostgreSQL transaction is aborted by any error in it, and
    none of the stores nests one): the outcome commits as without the claim, and the run
    that claim would have taken stays PENDING for an ordinary claim, which deals with the
    error as `claim_pending` does."""
    log.warning(
        "the claim in an outcome's transaction failed; the outcome is written alone",
        exc_info=True,
    )
    ex.key.completed = False  # in the transaction that rolled back
    return await _completion_and_transition(ex, changes, output, event, predict=False, claim=False)


async def _completion_and_transition(
    ex: Execution,
    changes: StageChanges,
    output: Any,
    event: StageCompleted,
    *,
    predict: bool,
    claim: bool = True,
) -> JobExecuteResult:
    """The transaction, taking what the stage started with as still true when `predict`:
    the run at `ex.run`'s version and the stage's row as `ex.row` (no other transition
    since, as for `_stages_unchanged`), so the store may skip its reads and send it as one
    statement that checks them (`Persistence.lock_run_and_update_stage(expect=)`). With
    `claim`, a transition that ends the run claims the next PENDING run for the slot it
    frees (`_claim_next`), unless the store answers this transaction's reads from the
    predictions (PostgreSQL): the claim's read would cost the outcome its one statement,
    and a transaction that reads takes more round trips than the claim it saves."""
    claimed: tuple[NextRunTaker, ClaimAtCreate, int] | None = None
    async with atomic(ex.deps, ex.causation_id) as unit:
        locked = await unit.db.lock_run_and_update_stage(
            ex.run.id,
            ex.row.id,
            changes,
            fence=StageFence.running(ex.cmd.attempt),
            expect=(ex.run, ex.row) if predict else None,
        )
        if locked is None:
            raise Unwritten()  # roll back now: the reason is read once the lock is gone
        run, updated = locked
        rows = _stages_unchanged(ex, run, updated)
        if rows is None and await _last_of_group(ex, unit, run.id):
            rows = await unit.db.stages_of_run(run.id)
        # After the run's lock and the fence, the order every writer takes them in; and
        # after the reads, so that on PostgreSQL the write travels with the next one.
        stored = await save_output(ex.deps, ex.run, ex.row.stage_id, output, produced_text(ex))
        run = await refresh_run_totals(unit, run.id, ex.report.metrics, rows) or run
        emit_outcome(ex, unit, event)
        if unit.shared:  # completed with the next group's jobs, if it opens one
            unit.completing = ex.cmd.job_id
        # Without the rows, siblings still run: the last of them to finish moves the run on,
        # and this one's worker takes the next pending sibling (`sibling_hand_on`).
        transition: RunTransitionResult | None = NOOP
        if rows is None:
            await hand_on_sibling(unit, run, ex)
        else:
            transition = await _decide(ex, unit, run, rows, stored)
        if unit.completing is not None:
            completed = await _complete_job(ex.deps, unit.take_completing(), ex.cmd.attempt)
        else:
            completed = unit.shared and ex.cmd.job_id is not None
        result = _RESULT(
            outcome="completed", output=output, transition=transition, job_completed=completed
        )
        await ex.key.complete(unit.db, result)
        if claim and _ends(transition) and getattr(unit.db, "claims_at_outcome", True):
            claimed = await _claim_next(ex.deps, unit)
    if claimed is not None:
        host, did, taken = claimed
        host.claimed_at_outcome(
            did.started,
            jobs_waiting=len(did.job_ids) > host.jobs_taken - taken,
            others_pending=did.others_pending,
        )
    return result


def _ends(transition: RunTransitionResult | None) -> bool:
    """Whether the outcome's transition ends the run, freeing its slot."""
    return transition is not None and transition.action in ("completed", "failed")


async def _claim_next(deps: Deps, unit: Unit) -> tuple[NextRunTaker, ClaimAtCreate, int] | None:
    """The run just ended and its slot has nothing handed to it: if the worker left runs
    PENDING for want of room (`handoff.next_run_taker`), claim the best of them here, as
    `RunClaimPending` would once the slot freed up, and hand its first stage to the slot —
    a burst's run then costs no claim transaction of its own. A claim that raises rolls
    the outcome back with it (`ClaimAtOutcomeFailed`): the caller writes it again alone."""
    host = next_run_taker()
    if host is None:
        return None
    did, taken = ClaimAtCreate(), host.jobs_taken
    try:
        found = await unit.db.claim_next_pending_run(
            run_id=host.run_id, plans=deps.registry.plans()
        )
        await start_claimed(deps, unit, found, host, did)
    except ExpectationFailed:
        # SQLite's held run lock, written before the claim's read, found the run moved:
        # the caller writes the outcome again, reading (as without a claim). PostgreSQL's
        # transactions never get here: they do not claim (`claims_at_outcome`).
        raise
    except Exception as error:
        raise ClaimAtOutcomeFailed(str(error)) from error
    return host, did, taken


async def _decide(
    ex: Execution, unit: Unit, run: RunRecord, rows: list[StageRecord], stored: bytes
) -> RunTransitionResult | None:
    """The run's transition in the outcome's transaction, `rows` read after its lock; None
    when a failed sibling leaves the decision to a transition that reads the jobs. The
    stage's output is known to the next stages as the text stored (`stored`), not as the
    object the result hands back to the caller, which the caller may change."""
    known = {**(ex.stored_outputs or {}), ex.row.stage_id: stored}
    if ex.stored_outputs is not None:
        unit.after_commit(warm_up(ex.deps, unit, run, rows, known))
    try:
        return await decide_next(ex.deps, unit, run, rows, None, locked=True, known=known)
    except NeedJobs:
        return None  # a failed sibling: the caller's own transition reads the jobs


async def _last_of_group(ex: Execution, unit: Unit, run_id: str) -> bool:
    """Whether no stage of the run is left PENDING, RUNNING or SUSPENDED, asked after the
    run's lock (so a sibling that finished first has committed, and one finishing now
    waits for this transaction): then this stage finished its group last, and it alone
    reads the group's rows and opens the next one. A stage alone in its group is last.

    A count, not the rows: every sibling before the last costs the same whatever the
    group's width. It is what `decide_next` would conclude from the rows (any active
    row: nothing to do), without sending them."""
    if ex.alone:
        return True
    return await unit.db.count_active_stages(run_id) == 0


def _stages_unchanged(
    ex: Execution, locked: RunRecord, updated: StageRecord
) -> list[StageRecord] | None:
    """The run's stages without reading them again, when what was read is still true.

    Every transition bumps the run's version, so if the lock just taken bumped
    it exactly once since `ex.run` was read, no transition committed in
    between: no group was opened, no run was failed, cancelled or rerun. Rows
    can change without a transition only by a stage's own execution (its start,
    its failure or suspension); for a stage alone in its group that is this
    stage, whose row is `updated`. With siblings, they are read again.
    """
    if not ex.alone or locked.version != ex.run.version + 1:
        return None
    rows = [row for row in ex.known_rows if row.stage_id != updated.stage_id]
    return sorted([*rows, updated], key=lambda row: (row.execution_group, row.stage_number))


async def _complete_job(deps: Deps, job_id: str | None, attempt: int) -> bool:
    """Complete the leased job in the current transaction (while it is at this delivery);
    False if there is none to."""
    if job_id is None:
        return False
    try:
        await deps.jobs.complete(job_id, attempt=attempt)
    except RecordNotFoundError:
        return False
    return True
