"""The kernel: `await kernel.dispatch(command)` and nothing else.

It holds no timers, threads or globals; hosts decide when to dispatch what. A host
of this process may offer it its free slots (`offer_slots`): a run created then is
claimed in its create's transaction, for that host (`claim.create_and_claim`).
Dispatch parses the command, applies the idempotency protocol for commands
that carry a key (spec §4.3), and routes to the handler. Generic commands run
in one transaction with their events; `job.execute`, `run.claimPending`,
`run.transition` and `stage.pollSuspended` manage their own transactions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from wfc.errors import ExpectationFailed, IdempotencyInProgressError
from wfc.runtime import commands as c
from wfc.runtime.adapters.memory.pinning import NoPinning
from wfc.runtime.handoff import RunTaker, handing_off_to
from wfc.runtime.kernel.child_outcome import run_finished
from wfc.runtime.kernel.claim import (
    ClaimAtCreate,
    ClaimAtCreateFailed,
    claim_pending,
    create_and_claim,
)
from wfc.runtime.kernel.deps import Deps, KeyCompletion, Unit, atomic
from wfc.runtime.kernel.execute import execute_job
from wfc.runtime.kernel.outbox import flush_outbox, replay_dlq
from wfc.runtime.kernel.plans import keep_plan
from wfc.runtime.kernel.poll import poll_suspended
from wfc.runtime.kernel.reap import reap_stale, reap_stuck
from wfc.runtime.kernel.rerun import rerun_from
from wfc.runtime.kernel.runs import cancel_run, create_run, same_request
from wfc.runtime.kernel.signals import send_signal
from wfc.runtime.kernel.transition import transition_run
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
from wfc.runtime.records import Acquired, Replay
from wfc.runtime.registry import WorkflowRegistry
from wfc.runtime.run_end_waits import RunEndWaits

ResultT = TypeVar("ResultT", bound=BaseModel)
log = logging.getLogger("wfc.kernel")


class Kernel:
    """A pure async command dispatcher over the ports it is given."""

    def __init__(
        self,
        *,
        persistence: Persistence,
        blobs: BlobStore,
        jobs: JobTransport,
        events: EventSink,
        clock: Clock,
        ids: IdSource,
        registry: WorkflowRegistry,
        scheduler: Scheduler | None = None,
        ai_calls: AICallLogger | None = None,
        idempotency_stale_after: timedelta | None = timedelta(minutes=10),
        pinning: Pinning | None = None,
        shared_transactions: bool = False,
        run_end_waits: RunEndWaits | None = None,
    ) -> None:
        # The waiters of the storage's runs (shared by the kernels on one storage), told
        # of each run this kernel ends.
        waits = run_end_waits or RunEndWaits()
        self.deps = Deps(
            persistence=persistence,
            blobs=blobs,
            jobs=jobs,
            sink=events,
            clock=clock,
            ids=ids,
            registry=registry,
            scheduler=scheduler,
            ai_calls=ai_calls,
            idempotency_stale_after=idempotency_stale_after,
            pinning=pinning or NoPinning(),
            shared_transactions=shared_transactions,
            on_finished=run_finished,
            run_end_waits=waits,
            run_end_listeners=[waits.run_ended],
        )
        self._handlers = self._routes()
        # Hosts in this process that take the runs it creates, each with its event loop.
        self._hosts: list[tuple[RunTaker, asyncio.AbstractEventLoop]] = []

    @overload
    async def dispatch(self, command: c.RunCreate) -> c.RunCreateResult: ...
    @overload
    async def dispatch(self, command: c.RunClaimPending) -> c.RunClaimPendingResult: ...
    @overload
    async def dispatch(self, command: c.RunTransition) -> c.RunTransitionResult: ...
    @overload
    async def dispatch(self, command: c.RunCancel) -> c.RunCancelResult: ...
    @overload
    async def dispatch(self, command: c.RunRerunFrom) -> c.RunRerunFromResult: ...
    @overload
    async def dispatch(self, command: c.RunSignal) -> c.RunSignalResult: ...
    @overload
    async def dispatch(self, command: c.JobExecute) -> c.JobExecuteResult: ...
    @overload
    async def dispatch(self, command: c.StagePollSuspended) -> c.StagePollSuspendedResult: ...
    @overload
    async def dispatch(self, command: c.LeaseReapStale) -> c.LeaseReapStaleResult: ...
    @overload
    async def dispatch(self, command: c.RunReapStuck) -> c.RunReapStuckResult: ...
    @overload
    async def dispatch(self, command: c.OutboxFlush) -> c.OutboxFlushResult: ...
    @overload
    async def dispatch(self, command: c.PluginReplayDLQ) -> c.PluginReplayDLQResult: ...
    @overload
    async def dispatch(self, command: dict[str, Any] | str | bytes) -> BaseModel: ...

    async def dispatch(self, command: c.Command | dict[str, Any] | str | bytes) -> BaseModel:
        """Execute one command and return its typed result (its storage calls share one
        connection, given back while a stage body runs)."""
        cmd = c.parse_command(command)
        handler = self._handlers.get(type(cmd)) or self._handler_of(cmd)
        pinning = self.deps.pinning
        if type(pinning) is NoPinning:  # its pin does nothing: not entered, two awaits saved
            return await handler(cmd)
        async with pinning.pinned():
            return await handler(cmd)

    def _routes(self) -> dict[type[BaseModel], Callable[[Any], Awaitable[BaseModel]]]:
        """The handler of each command type. A table rather than a `match` over the types:
        a host dispatches about ten commands per run, and a `match` tried the types in
        turn, an `isinstance` each, up to eleven for the last."""
        deps = self.deps
        return {
            c.RunCreate: self._create,
            c.RunRerunFrom: self._rerun_from,
            c.JobExecute: self._execute,
            c.RunCancel: lambda cmd: self._generic(
                deps.ids.new_id(), lambda u: cancel_run(deps, u, cmd)
            ),
            c.RunSignal: lambda cmd: send_signal(deps, cmd),
            c.RunTransition: lambda cmd: transition_run(deps, cmd, deps.ids.new_id()),
            c.RunClaimPending: lambda cmd: claim_pending(deps, cmd),
            c.StagePollSuspended: lambda cmd: poll_suspended(deps, cmd),
            c.LeaseReapStale: lambda cmd: reap_stale(deps, cmd),
            c.RunReapStuck: lambda cmd: reap_stuck(deps, cmd),
            c.OutboxFlush: lambda cmd: flush_outbox(deps, cmd),
            c.PluginReplayDLQ: lambda cmd: replay_dlq(deps, cmd),
        }

    def _handler_of(self, cmd: c.Command) -> Callable[[Any], Awaitable[BaseModel]]:
        """The handler of a subclass of a command type: its base's."""
        for kind in type(cmd).__mro__:
            if kind in self._handlers:
                return self._handlers[kind]
        raise AssertionError(f"unrouted command {cmd!r}")  # pragma: no cover

    def offer_slots(self, host: RunTaker) -> None:
        """Have runs created here claimed for `host` in their create's transaction while
        it has room (`create_and_claim`), on the event loop calling this; until
        `withdraw_slots`."""
        self._hosts.append((host, asyncio.get_running_loop()))

    def withdraw_slots(self, host: RunTaker) -> None:
        """Create runs PENDING again, as far as `host` is concerned (it is stopping)."""
        self._hosts = [(offered, loop) for offered, loop in self._hosts if offered is not host]

    def _host_with_room(self, cmd: c.RunCreate) -> RunTaker | None:
        """A host offered on this event loop that can start the run `cmd` creates now."""
        loop = asyncio.get_running_loop()
        for host, offered_on in self._hosts:
            if offered_on is not loop or (host.run_id is not None and host.run_id != cmd.run_id):
                continue  # another loop's (its slots are not ours to fill), or another run's
            if host.room_for_a_run():
                return host
        return None

    async def create_for(self, command: c.RunCreate, host: RunTaker) -> c.RunCreateResult:
        """`dispatch(command)` with `host` offered a slot for this one create, as
        `offer_slots` offers one for every create: if `host.room_for_a_run()`, the create's
        transaction also claims the run for it and hands it the first stage. The test
        harness's `TestKernel.run` makes and claims a run that would be claimed alone so,
        in one transaction where create and claim were two."""
        pinning = self.deps.pinning
        if type(pinning) is NoPinning:
            return await self._create(command, host)
        async with pinning.pinned():
            return await self._create(command, host)

    async def _create(self, cmd: c.RunCreate, offered: RunTaker | None = None) -> c.RunCreateResult:
        deps = self.deps
        await keep_plan(deps, cmd.workflow_id)
        # With a host here, it may take the run in the create (`offer_slots`); without one
        # (a test kernel, a web app), the create alone, with no call more than before.
        create: Callable[[str, KeyCompletion], Awaitable[c.RunCreateResult]] = (
            partial(self._create_keyed, cmd=cmd, offered=offered)
            if self._hosts or offered is not None
            else lambda cid, key: self._generic(cid, lambda u: create_run(deps, u, cmd), key)
        )
        return await self._keyed(
            cmd,
            cmd.idempotency_key,
            c.RunCreateResult,
            create,
            predict=True,  # its one transaction completes the key
            replayed=lambda created: same_request(deps, cmd, created),
        )

    async def _create_keyed(
        self,
        causation_id: str,
        key: KeyCompletion,
        cmd: c.RunCreate,
        offered: RunTaker | None = None,
    ) -> c.RunCreateResult:
        """The create's one transaction: with a host here that has room (`offered`, else
        one of `offer_slots`), the run's claim and first stage too (`create_and_claim`, one
        transaction where create and claim were two), else the run alone, PENDING."""
        deps = self.deps
        if offered is None:
            host = self._host_with_room(cmd)
        else:
            host = offered if offered.room_for_a_run() else None
        if host is not None:
            claimed = ClaimAtCreate()
            taken = host.jobs_taken
            try:
                with handing_off_to(host):
                    created = await self._generic(
                        causation_id, lambda u: create_and_claim(deps, u, cmd, host, claimed), key
                    )
            except ClaimAtCreateFailed:
                # Rolled back whole: created alone below, PENDING, for the host's next claim
                # (a poll or a wakeup), which meets the error as any claim does.
                log.warning("the claim in a create's transaction failed", exc_info=True)
            else:
                if claimed.started is not None:
                    host.claimed_at_create(
                        claimed.started,
                        jobs_waiting=len(claimed.job_ids) > host.jobs_taken - taken,
                        others_pending=claimed.others_pending,
                    )
                return created
        return await self._generic(causation_id, lambda u: create_run(deps, u, cmd), key)

    async def _rerun_from(self, cmd: c.RunRerunFrom) -> c.RunRerunFromResult:
        deps = self.deps
        return await self._keyed(
            cmd,
            cmd.idempotency_key,
            c.RunRerunFromResult,
            lambda cid, key: self._generic(cid, lambda u: rerun_from(deps, u, cmd), key),
        )

    def _execute(self, cmd: c.JobExecute) -> Awaitable[c.JobExecuteResult]:
        """`job.execute`; without a key (a job its host leased: every stage of a run), the
        handler's own coroutine, not `_keyed`'s around it: one coroutine less per stage."""
        deps = self.deps
        if cmd.idempotency_key is None:
            return execute_job(deps, cmd, deps.ids.new_id(), KeyCompletion(None, cmd.type))
        return self._keyed(
            cmd,
            cmd.idempotency_key,
            c.JobExecuteResult,
            lambda cid, key: execute_job(deps, cmd, cid, key),
        )

    async def _generic(
        self,
        causation_id: str,
        handler: Callable[[Unit], Awaitable[ResultT]],
        key: KeyCompletion | None = None,
    ) -> ResultT:
        """`handler` in one transaction, which also completes the idempotency `key`: the
        result is cached exactly when the state it describes commits."""
        async with atomic(self.deps, causation_id) as unit:
            result = await handler(unit)
            if key is not None:
                await key.complete(unit.db, result)
            return result

    async def _keyed(
        self,
        cmd: c.Command,
        key: str | None,
        result_type: type[ResultT],
        run: Callable[[str, KeyCompletion], Awaitable[ResultT]],
        *,
        predict: bool = False,
        replayed: Callable[[ResultT], Awaitable[None]] | None = None,
    ) -> ResultT:
        """The idempotency protocol around `run` (called with the causation id and the key,
        which the handler may complete inside its last transaction). `predict`: the
        handler always completes the key in its one transaction, so the store may take the
        key as acquired and write it there (`Persistence.acquire_idempotency_key`); if it
        was taken, nothing was written, and the protocol runs again reading the key."""
        persistence = self.deps.persistence
        if key is None:
            return await run(self.deps.ids.new_id(), KeyCompletion(None, cmd.type))
        claim = await persistence.acquire_idempotency_key(
            key,
            cmd.type,
            self.deps.clock.now(),
            self.deps.idempotency_stale_after,
            predict=predict,
        )
        if isinstance(claim, Replay):
            result = result_type.model_validate(claim.result)
            if replayed is not None:  # may refuse a different request under the same key
                await replayed(result)
            return result
        if not isinstance(claim, Acquired):
            raise IdempotencyInProgressError(key, cmd.type)
        completion = KeyCompletion(key, cmd.type)
        try:
            result = await run(key, completion)
        except ExpectationFailed:
            if not predict:
                raise
            return await self._keyed(cmd, key, result_type, run, replayed=replayed)  # it was there
        except BaseException:
            try:
                await persistence.release_idempotency_key(key, cmd.type)
            except Exception:  # the original error matters more
                pass
            raise
        if not completion.completed:
            await completion.complete(persistence, result)
        return result
