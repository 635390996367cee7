"""What every command handler works with: the ports, and a unit of work over them.

A `Unit` is one transaction plus what it produced: events appended to the
outbox inside that transaction (so state and the events describing it commit
together), and actions to run only after the commit (delete blobs), so no
worker ever acts on state that was rolled back. Jobs are queued (or
cancelled) inside the transaction when the job queue shares it, else right
after the commit (`Unit.with_jobs`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from wfc.observability import observer
from wfc.runtime.adapters.memory.pinning import NoPinning
from wfc.runtime.events import Event, event_payload
from wfc.runtime.kernel.warm import WarmStarts
from wfc.runtime.ports import (
    AICallLogger,
    BlobStore,
    Clock,
    EventSink,
    IdSource,
    JobTransport,
    Persistence,
    Pinning,
    Scheduler,
)
from wfc.runtime.record_builders import builder
from wfc.runtime.records import NewOutboxEvent, RunRecord, StageRecord
from wfc.runtime.registry import WorkflowRegistry
from wfc.runtime.run_end_waits import RunEndWaits

log = logging.getLogger("wfc.kernel")

# Each event of every transaction goes to the outbox as one: built without a class call.
_NEW_OUTBOX_EVENT = builder(NewOutboxEvent)


@dataclass(frozen=True, slots=True, kw_only=True)
class Deps:
    """The ports a kernel was built with."""

    persistence: Persistence
    blobs: BlobStore
    jobs: JobTransport
    sink: EventSink
    clock: Clock
    ids: IdSource
    registry: WorkflowRegistry
    scheduler: Scheduler | None = None
    ai_calls: AICallLogger | None = None
    idempotency_stale_after: timedelta | None = timedelta(minutes=10)
    pinning: Pinning = field(default_factory=NoPinning)
    warm: WarmStarts = field(default_factory=WarmStarts)
    shared_transactions: bool = False  # see `Storage.shared_transactions`
    # Fingerprints of the plans this process has stored (`Persistence.record_plans`): each
    # is stored once per process, with the first run created from it.
    recorded_plans: set[str] = field(default_factory=set)
    # `wfc diff` of (a stored plan, a served plan), computed once (`kernel.adopt`).
    plan_diffs: dict[tuple[str, str, bool], Any] = field(default_factory=dict)
    # Chunks of mapped stages' lists read lately, by (blob key, rerun generation): a
    # chunk never changes within a generation, and a worker runs neighbouring items.
    map_chunks: OrderedDict[tuple[str, int], list[Any]] = field(default_factory=OrderedDict)
    # Called in the transaction of each run that ended in it (`Unit.finished`), before it
    # commits: a child run's parent is told there (`wfc.runtime.kernel.children`).
    on_finished: Callable[[Deps, Unit, RunRecord], Awaitable[None]] | None = None
    # Told the id of each run that ended in a transaction of this kernel, once it
    # committed, whatever ended it (its last stage, a child's end, a poll, a signal, a
    # cancel): a host in this process wakes whoever waits for that run
    # (`WorkerHost.run_end_signal`).
    run_end_listeners: list[Callable[[str], None]] = field(default_factory=list)
    # Who in this process waits for which run (`wait_for_run`), woken by the listener the
    # kernel registers above and by the database for runs other processes end.
    run_end_waits: RunEndWaits = field(default_factory=RunEndWaits)


@dataclass(slots=True)
class KeyCompletion:
    """The idempotency key a command runs under (or None), to complete with its result.

    A handler whose result is settled by its last transaction completes the key
    inside it, so the result is cached exactly when the state it describes
    commits: a crash can no longer leave the key "in progress" for a command
    that finished. Otherwise the kernel completes it after the handler returns.
    """

    key: str | None
    command_type: str
    completed: bool = False

    async def complete(self, db: Persistence, result: BaseModel) -> None:
        """Cache `result` under the key; call it last in the transaction, if at all."""
        if self.key is None:
            return
        await db.complete_idempotency_key(
            self.key, self.command_type, result.model_dump(mode="json")
        )
        self.completed = True


AfterCommit = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Unit:
    """One transaction's handle, its buffered events and its after-commit actions.

    `opened` are the stage rows a transition created in it (`open_group`); rows
    that were there already (an orphan of a crash) are not among them.
    `completing` is the leased job of the stage whose outcome this unit records,
    to complete with the first jobs it queues (`JobTransport.enqueue(completing=)`).
    `finished` are the runs it moved to COMPLETED, FAILED or CANCELLED, as written, for
    `Deps.on_finished` before it commits.
    """

    db: Persistence
    causation_id: str
    shared: bool = False
    events: list[Event] = field(default_factory=list)
    after: list[AfterCommit] = field(default_factory=list)
    opened: list[StageRecord] = field(default_factory=list)
    completing: str | None = None
    finished: list[RunRecord] = field(default_factory=list)

    def take_completing(self) -> str | None:
        """The job to complete with the jobs queued now, once."""
        job_id, self.completing = self.completing, None
        return job_id

    def emit(self, event: Event) -> None:
        """Append `event` to the outbox when this unit commits."""
        self.events.append(event)

    def after_commit(self, action: AfterCommit) -> None:
        """Run `action` once this unit has committed (never if it rolls back)."""
        self.after.append(action)

    async def with_jobs(self, action: AfterCommit) -> None:
        """Run `action` (it queues or cancels jobs) in this transaction when the job queue
        shares it — the jobs and the state they act on commit together, and a crash cannot
        come between them — else once it has committed, so no worker sees a job early."""
        if self.shared:
            await action()
        else:
            self.after_commit(action)


def atomic(deps: Deps, causation_id: str) -> AbstractAsyncContextManager[Unit]:
    """A transaction whose events are written inside it and whose after-commit actions follow it."""
    return _Atomic(deps, causation_id)


class _Atomic:
    """`atomic`'s context. A class, not an `asynccontextmanager`: a stage opens two or
    three, and an async generator each (made, hooked into the loop, finalised) was a cost."""

    __slots__ = ("_causation_id", "_deps", "_opened", "_unit")

    def __init__(self, deps: Deps, causation_id: str) -> None:
        self._deps = deps
        self._causation_id = causation_id
        self._opened: AbstractAsyncContextManager[Persistence] = deps.persistence.transaction()

    async def __aenter__(self) -> Unit:
        tx = await self._opened.__aenter__()
        deps = self._deps
        self._unit = Unit(db=tx, causation_id=self._causation_id, shared=deps.shared_transactions)
        return self._unit

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: Any
    ) -> bool:
        ended: list[str] = []
        if kind is not None:  # rolled back: no events, no after-commit actions
            if not await self._opened.__aexit__(kind, error, trace):
                return False
        else:
            try:
                ended = await self._before_commit()
            except BaseException as failed:
                if not await self._opened.__aexit__(type(failed), failed, failed.__traceback__):
                    raise
            else:
                await self._opened.__aexit__(None, None, None)
        unit = self._unit
        if unit.events:  # committed: counted once, by the process that committed them
            observer().committed(unit.events)
        for action in unit.after:
            await action()
        # They close over the unit (a cycle): dropped now, it is freed at once, not by the
        # cyclic GC, whose collections this garbage made about a sixth of a run's CPU.
        unit.after.clear()
        if ended:
            _tell_run_ended(self._deps, ended)
        return kind is not None

    async def _before_commit(self) -> list[str]:
        """A parent's stage told of the runs that ended (which may end the parent too),
        then the unit's events appended; the ids of the runs that ended."""
        deps, unit = self._deps, self._unit
        ended: list[str] = []
        while unit.finished:
            run = unit.finished.pop(0)
            ended.append(run.id)
            if deps.on_finished is not None:
                await deps.on_finished(deps, unit, run)
        if unit.events:
            await unit.db.append_outbox(
                [
                    _NEW_OUTBOX_EVENT(
                        run_id=event.workflow_run_id,
                        event_type=event.type,
                        payload=event_payload(event),
                        causation_id=self._causation_id,
                        occurred_at=event.timestamp,
                    )
                    for event in unit.events
                ]
            )
        return ended


def _tell_run_ended(deps: Deps, ended: list[str]) -> None:
    """Each run-end listener told of each run that ended, once everything the commit
    promised is done (the after-commit actions). A listener is told, not trusted: one that
    raises is logged, and neither the command that committed nor the other listeners see
    its error."""
    for run_id in ended:
        for listener in list(deps.run_end_listeners):
            try:
                listener(run_id)
            except Exception:
                log.exception("a run-end listener failed for run %s", run_id)
