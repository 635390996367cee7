"""`run.signal`: send a named signal with a payload to a run (`wfc.runtime.kernel.waits`).

The signal is checked first, outside any transaction: the run must exist and not
be finished, its workflow must declare the signal, and the payload must fit the
declared schema (every failing field named). The workflow is the one this kernel
serves for the run's plan, else the plan stored when the run was created, so a
process that serves no workflow (`wfc runs signal`) can send signals too.

Then one transaction. It locks the run's row first (the order every transition
takes), so a group opening concurrently either sees the signal or is seen by
it: a signal is never kept while the stage that would take it opens without it.
It keeps the signal under its idempotency key, unique per run (a second send
under the key is the same signal, delivered once). If a stage of the run is
SUSPENDED waiting for that name, the first unconsumed signal of the name is
taken by it and the stage completed with its payload in the same transaction,
fenced on the row still SUSPENDED at the version read (a timeout whose job
started the stage first wins; the transaction is then done again, and keeps the
signal for a later wait), and the run is transitioned there too: the next
group's jobs are queued in the commit that delivers the signal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from wfc.errors import InvalidSignalPayloadError, SignalRefusedError
from wfc.plan import Plan
from wfc.runtime.commands import RunSignal, RunSignalResult, RunTransitionResult
from wfc.runtime.kernel.deps import Deps, Unit, atomic
from wfc.runtime.kernel.rows import save_output
from wfc.runtime.kernel.serving import Serving
from wfc.runtime.kernel.transition import NeedJobs, decide_next
from wfc.runtime.kernel.waits import completed_event, completion
from wfc.runtime.payloads import payload_problems
from wfc.runtime.records import TERMINAL, RunRecord, SignalRecord, StageFence, StageRecord, Status
from wfc.runtime.workflow import Workflow

_TRIES = 3


class _Lost(Exception):
    """The waiting stage moved on (its timeout started it) between the read and the write."""


class _Duplicate(Exception):
    """The key was taken by a send that committed meanwhile: roll back, answer with it."""

    def __init__(self, result: RunSignalResult) -> None:
        super().__init__(result.signal_id)
        self.result = result


async def send_signal(deps: Deps, cmd: RunSignal) -> RunSignalResult:
    """Check, keep and (if a stage waits for it) deliver the signal; see the module."""
    run = await deps.persistence.get_run(cmd.workflow_run_id)
    if run is None:
        raise SignalRefusedError(cmd.workflow_run_id, "no such run")
    if cmd.idempotency_key is not None:  # sent before: the same answer, finished run or not
        sent = await deps.persistence.signals_of_run(run.id)
        kept = next((s for s in sent if s.idempotency_key == cmd.idempotency_key), None)
        if kept is not None:
            rows = await deps.persistence.stages_of_run(run.id)
            return _duplicate(kept, cmd, rows)
    _refuse_finished(run)
    workflow = await _workflow_of(deps, run)
    spec = workflow.plan.signal(cmd.name)
    if spec is None:
        declared = ", ".join(s.name for s in workflow.plan.signals) or "none"
        raise SignalRefusedError(
            run.id,
            f"workflow {run.workflow_id} declares no signal {cmd.name!r} (signals: {declared})",
        )
    problems = payload_problems(spec.payload_schema, cmd.payload)
    if problems:
        raise InvalidSignalPayloadError(cmd.name, problems)
    signal = SignalRecord(
        id=deps.ids.new_id(),
        run_id=run.id,
        name=cmd.name,
        idempotency_key=cmd.idempotency_key or deps.ids.new_id(),
        payload=cmd.payload,
        sent_at=deps.clock.now(),
    )
    # Transitions look the run's workflow up in the registry: this one is it.
    serving = replace(deps, registry=Serving(deps.registry, workflow))
    for tries_left in reversed(range(_TRIES)):
        try:
            async with atomic(serving, deps.ids.new_id()) as unit:
                return await _deliver(serving, unit, workflow, signal)
        except _Duplicate as duplicate:
            return duplicate.result
        except _Lost:
            if not tries_left:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _refuse_finished(run: RunRecord) -> None:
    if run.status in TERMINAL:
        raise SignalRefusedError(
            run.id, f"it is {run.status.value}: a finished run takes no signals"
        )


async def _deliver(
    deps: Deps, unit: Unit, workflow: Workflow, signal: SignalRecord
) -> RunSignalResult:
    now = deps.clock.now()
    # The run's row first, then the waiting stage's: the order a stage's start, its outcome
    # and `run.cancel` take them in. Taken the other way round, a signal racing its
    # timeout's delivery held the stage and waited for the run while the start held the
    # run and waited for the stage: a deadlock on PostgreSQL.
    locked = await unit.db.update_run(signal.run_id, {})  # the run's lock
    _refuse_finished(locked)
    kept = await unit.db.add_signal(signal)
    rows = await unit.db.stages_of_run(locked.id)  # read under the lock: as transitions left it
    if kept.id != signal.id:  # sent meanwhile under the same key: write nothing
        raise _Duplicate(_duplicate(kept, signal, rows))
    waiting = _waiting_for(workflow, rows, signal.name)
    if waiting is None:
        return RunSignalResult(signal_id=kept.id)
    written = await _complete(unit, locked, waiting, now)
    rows = [written if row.id == written.id else row for row in rows]
    taken = await unit.db.take_signal(locked.id, signal.name, written.id, now)
    assert taken is not None  # this one at least, unconsumed, under the run's lock
    await save_output(deps, locked, written.stage_id, taken.payload)
    unit.emit(completed_event(written, now))
    stage = workflow.stage(written.stage_id)
    if stage is not None and stage.wait_for is not None and stage.wait_for.timeout_ms:
        await _cancel_timer(deps, unit, written)
    transition: RunTransitionResult | None
    try:
        known = {written.stage_id: taken.payload}
        transition = await decide_next(deps, unit, locked, rows, None, locked=True, known=known)
    except NeedJobs:
        transition = None  # a failed sibling: its own job's transition settles the run
    return RunSignalResult(signal_id=kept.id, delivered_to=written.stage_id, transition=transition)


async def _complete(unit: Unit, run: RunRecord, waiting: StageRecord, now: datetime) -> StageRecord:
    """Complete the waiting stage, fenced on its row still SUSPENDED at the version read
    and its run RUNNING; `_Lost` (the transaction rolls back) when either moved on."""
    fence = StageFence(statuses=frozenset({Status.SUSPENDED}), version=waiting.version)
    changes = completion(waiting, run, now)
    written = await unit.db.update_stage_while_running(waiting.id, run.id, changes, fence=fence)
    if written is None:
        raise _Lost()
    return written


def _duplicate(
    kept: SignalRecord, sent: SignalRecord | RunSignal, rows: list[StageRecord]
) -> RunSignalResult:
    """The answer to a send under a key used before: that signal, if it is the same one."""
    if (kept.name, kept.payload) != (sent.name, sent.payload):
        what = "name" if kept.name != sent.name else "payload"
        raise SignalRefusedError(
            kept.run_id,
            f"idempotency key {kept.idempotency_key!r} was used for signal {kept.name!r} "
            f"with a different {what}; use a new key for a new signal",
        )
    taker = next((row.stage_id for row in rows if row.id == kept.consumed_by), None)
    return RunSignalResult(signal_id=kept.id, delivered_to=taker, duplicate=True)


def _waiting_for(workflow: Workflow, rows: list[StageRecord], name: str) -> StageRecord | None:
    """The first SUSPENDED stage row waiting for the signal `name`, if any."""
    for row in rows:
        stage = workflow.stage(row.stage_id)
        if (
            row.status is Status.SUSPENDED
            and stage is not None
            and stage.wait_for is not None
            and stage.wait_for.signal == name
        ):
            return row
    return None


async def _cancel_timer(deps: Deps, unit: Unit, row: StageRecord) -> None:
    """Close the timeout job of a wait the signal completed (best effort: were it left,
    its delivery would find the stage finished and do nothing)."""
    stage_id, run_id = row.stage_id, row.run_id

    async def close() -> None:
        for job in await deps.jobs.jobs_of_run(run_id):
            if job.stage_id == stage_id and job.status is Status.PENDING:
                await deps.jobs.complete(job.id, attempt=job.attempt)

    await unit.with_jobs(close)


async def _workflow_of(deps: Deps, run: RunRecord) -> Workflow:
    """The run's workflow: the one served here for its plan, else its stored plan's."""
    served = deps.registry.get(run.workflow_id)
    if served is not None and served.plan.fingerprint == run.plan_fingerprint:
        return served
    stored = await deps.persistence.get_plan(run.plan_fingerprint)
    if stored is None:
        raise SignalRefusedError(
            run.id,
            f"its plan {run.plan_fingerprint} is not stored; send the signal from a process "
            "that serves the workflow",
        )
    return Workflow.of_plan(Plan.from_json(stored.plan))
