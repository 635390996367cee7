"""`outbox.flush` and `plugin.replayDLQ` (spec §6): deliver events, park the undeliverable."""

from __future__ import annotations

from wfc.runtime.commands import (
    OutboxFlush,
    OutboxFlushResult,
    PluginReplayDLQ,
    PluginReplayDLQResult,
)
from wfc.runtime.kernel.deps import Deps
from wfc.runtime.ports import Persistence
from wfc.runtime.prevalidated import maker
from wfc.runtime.records import OutboxRecord

DEFAULT_MAX_RETRIES = 3
_NOTHING_WAITED = OutboxFlushResult(published=0)  # frozen: one for every empty flush
_FLUSHED = maker(OutboxFlushResult)  # built from an int and a bool, not validated again
_NONE: frozenset[str] = frozenset()


async def flush_outbox(deps: Deps, cmd: OutboxFlush) -> OutboxFlushResult:
    """Deliver unpublished events in append order, keeping each run's events in sequence.

    One flusher at a time across the fleet (`Persistence.outbox_flusher`): a second
    one finds it held and does nothing, so two workers never deliver a run's events
    out of order. When delivering an event fails, later events of the same run wait
    for the next flush, so a plugin never sees a run's events out of order. An event
    that fails `max_retries` times (the sink's `max_retries`, else 3) goes to the
    dead-letter queue, and the run's later events flow again.

    A sink that names the event types it delivers (`event_types`) is not given the
    others: they are marked published without being read (a worker with no plugins
    reads no payloads at all). Their order does not matter, as no one receives them.
    """
    max_retries = int(getattr(deps.sink, "max_retries", DEFAULT_MAX_RETRIES))
    wanted: frozenset[str] | None = getattr(deps.sink, "event_types", None)
    async with deps.persistence.outbox_flusher() as db:
        if db is None:
            return OutboxFlushResult(published=0, busy=True)
        passed = 0
        if wanted is not None:
            passed = await db.mark_unwanted_published(wanted, deps.clock.now(), cmd.max_events)
        events = [] if wanted == _NONE else await db.unpublished_outbox(cmd.max_events, wanted)
        delivered = await _deliver(deps, db, events, max_retries) if events else []
        if delivered:
            await db.mark_published(delivered, deps.clock.now())
    if not (passed or events):
        return _NOTHING_WAITED
    remaining = cmd.max_events in (passed, len(events))
    return _FLUSHED(published=passed + len(delivered), remaining=remaining)


async def _deliver(
    deps: Deps, db: Persistence, events: list[OutboxRecord], max_retries: int
) -> list[OutboxRecord]:
    """Give each event to the sink; those of a run whose earlier event failed wait."""
    blocked: set[str] = set()
    delivered: list[OutboxRecord] = []
    for event in events:
        if event.run_id in blocked:
            continue
        try:
            await deps.sink.emit(event.payload)
        except Exception:
            blocked.add(event.run_id)
            if await db.increment_outbox_retry(event) >= max_retries:
                await db.move_to_dlq(event, deps.clock.now())
            continue
        delivered.append(event)
    return delivered


async def replay_dlq(deps: Deps, cmd: PluginReplayDLQ) -> PluginReplayDLQResult:
    """Put dead-lettered events back in line with a fresh retry count."""
    return PluginReplayDLQResult(replayed=await deps.persistence.replay_dlq(cmd.max_events))
