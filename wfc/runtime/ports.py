"""The ports: everything the kernel needs from outside, as narrow async protocols.

The kernel only talks to these, so the memory adapters (tests, `wfc.testing`)
and the SQL adapters (SQLite, PostgreSQL) are interchangeable, and one
conformance suite holds them all to the same contract (spec §8). Each method
does one thing; none takes free-form queries. The two largest, `Persistence` and
`JobTransport`, have modules of their own (`persistence_port`, `job_port`) and are
imported from here with the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from wfc.runtime.ai_records import AICallRecord, AIStats
from wfc.runtime.job_port import JobTransport as JobTransport
from wfc.runtime.persistence_port import Persistence as Persistence
from wfc.runtime.records import JsonObject


class Clock(Protocol):
    """The only source of time the kernel reads (a `FakeClock` in tests)."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class IdSource(Protocol):
    """The only source of new ids the kernel uses."""

    def new_id(self) -> str:
        """A fresh unique id."""
        ...


class BlobAccess(Protocol):
    """Large payloads by key, so they stay out of stage outputs and the database rows.

    What a stage sees of the `BlobStore` (`ctx.blobs`); it is defined here, with
    the store it is part of, so the ports import nothing above them, and
    `wfc.runtime.stage` imports it from here.
    """

    async def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there."""

    async def get(self, key: str) -> bytes:
        """The bytes under `key`; `KeyError` when there are none."""

    async def exists(self, key: str) -> bool:
        """Whether `key` holds a payload."""

    async def delete(self, key: str) -> None:
        """Remove `key`; no error when it is absent."""


class BlobStore(BlobAccess, Protocol):
    """Payloads by key: stage outputs and whatever stages store themselves."""

    async def list(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, sorted."""
        ...

    async def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        """Delete every key starting with one of `prefixes` (pruned runs' blobs: one call
        for a whole batch of runs, not one per run); how many."""
        ...


class Wakeups(Protocol):
    """Notifications that work may be waiting, from other processes (optional for hosts)."""

    def listen(self, on_wake: Callable[[str], None]) -> AbstractAsyncContextManager[Listening]:
        """Call `on_wake("jobs")` when jobs may be due, `on_wake("runs")` when a run was
        created and `on_wake("runs-waiting")` when a claim lead passed runs on, until the
        block exits; `on_wake("runs-pending")` when a run is PENDING but the change seen
        may have been the listener's own (a worker with no job in hand claims then).
        Delivery is best effort: hosts still poll."""
        ...


class Listening(Protocol):
    """An open `Wakeups.listen`, which also settles which listener claims new runs.

    A created run wakes every listener; were all of them to claim it, all but one
    would spend a transaction finding nothing, on every run. So one listener at a
    time leads: it claims created runs, and when it has no room for them it
    passes them on to the others.
    """

    @property
    def leading(self) -> bool:
        """Whether this listener is the claim lead now."""
        ...

    async def lead_claims(self) -> bool:
        """Become the claim lead if no listener is; True while this one is it (until the
        block exits or the connection is lost)."""
        ...

    async def pass_on_claims(self) -> None:
        """Let go of the lead and wake the other listeners to take it, with the runs this
        one has no room for; nothing when this one does not lead."""
        ...

    async def until_lost(self) -> None:
        """Return when the listening connection is lost (never, while it holds)."""
        ...


class RunEnds(Protocol):
    """Word that runs ended, whichever process ended them (optional: waiters still poll)."""

    def listen(
        self, on_end: Callable[[str | None], None]
    ) -> AbstractAsyncContextManager[Awaitable[None]]:
        """Call `on_end(run_id)` when that run ended, and `on_end(None)` when runs may have
        moved without saying which (a SQLite file changed), until the block exits. The
        block is given an awaitable that returns when the listening is lost (never, while
        it holds). Delivery is best effort: waiters still poll."""
        ...


class EventSink(Protocol):
    """Where `outbox.flush` delivers events; raising makes the outbox retry.

    Two optional attributes tune the flush: `max_retries` (deliveries before an event is
    parked in the DLQ, default 3) and `event_types`, a frozenset of the event types the sink
    delivers at all (`PluginRunner`: those its plugins subscribe to). Events of other types
    are marked published without being read; a sink without it is given every event. One
    flusher delivers for the whole fleet at a time, so workers sharing a database should
    run the same plugins: a worker without them marks every event published."""

    async def emit(self, event: JsonObject) -> None:
        """Deliver one event payload."""


class Scheduler(Protocol):
    """Deferred commands (kept for parity with the seed; the kernel never calls it)."""

    async def schedule(self, command_type: str, payload: JsonObject, run_at: datetime) -> None:
        """Arrange for a command to be dispatched at `run_at`."""

    async def cancel(self, command_type: str, correlation_id: str) -> None:
        """Forget a scheduled command."""


class AICallLogger(Protocol):
    """The token and cost ledger of model calls."""

    async def log_call(self, call: AICallRecord) -> None:
        """Record one call."""

    async def log_batch_results(self, batch_id: str, calls: Sequence[AICallRecord]) -> bool:
        """Record a batch's calls once; False (and nothing written) if that batch is recorded."""
        ...

    async def is_recorded(self, batch_id: str) -> bool:
        """Whether the batch's results were recorded."""
        ...

    async def stats(self, topic_prefix: str) -> AIStats:
        """Totals over calls whose topic is `topic_prefix` or lies under it (whole segments)."""
        ...


class Pinning(Protocol):
    """Lets one task's sequence of storage calls share one database connection.

    The kernel pins around each command and a host around each job, and
    releases the pin while a stage body runs. Adapters without connections
    (memory) do nothing (`NoPinning`).
    """

    def pinned(self) -> AbstractAsyncContextManager[None]:
        """Storage calls made by this task inside the block share one connection."""
        ...

    def released(self) -> AbstractAsyncContextManager[None]:
        """Inside a pin: give the connection back while the block runs."""
        ...


class Storage(Protocol):
    """The storage ports a kernel runs on, opened together (e.g. `open_storage(url)`).

    One optional attribute: `run_end_waits`, a `wfc.runtime.run_end_waits.RunEndWaits`
    over the storage's `RunEnds`, shared by the kernels on it, so that `wait_for_run`
    sees a run another process ended as soon as it ends (`open_storage` gives one)."""

    @property
    def persistence(self) -> Persistence: ...
    @property
    def jobs(self) -> JobTransport: ...
    @property
    def blobs(self) -> BlobStore: ...
    @property
    def ai_calls(self) -> AICallLogger: ...
    @property
    def pinning(self) -> Pinning: ...
    @property
    def shared_transactions(self) -> bool:
        """Whether `jobs` and `blobs` write inside `persistence`'s transactions (one
        database): a command then queues its jobs and stores its blobs in the commit that
        records the state they belong to, with no window for a crash in between."""
        ...
