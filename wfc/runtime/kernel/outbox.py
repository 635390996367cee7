"""`outbox.flush` and `plugin.replayDLQ` (spec §6): deliver events, park the undeliverable."""

from __future__ import annotations

from wfc.runtime.commands import (
    OutboxFlush,
    OutboxFlushResult,
    PluginReplayDLQ,
    PluginReplayDLQResult,
)
from wfc.runtime.kernel.deps import Deps

DEFAULT_MAX_RETRIES = 3


async def flush_outbox(deps: Deps, cmd: OutboxFlush) -> OutboxFlushResult:
    """Deliver unpublished events in append order, keeping each run's events in sequence.

    When delivering an event fails, later events of the same run wait for the
    next flush, so a plugin never sees a run's events out of order. An event
    that fails `max_retries` times (the sink's `max_retries`, else 3) goes to
    the dead-letter queue, and the run's later events flow again.
    """
    max_retries = int(getattr(deps.sink, "max_retries", DEFAULT_MAX_RETRIES))
    blocked: set[str] = set()
    delivered: list[str] = []
    for event in await deps.persistence.unpublished_outbox(cmd.max_events):
        if event.run_id in blocked:
            continue
        try:
            await deps.sink.emit(event.payload)
        except Exception:
            blocked.add(event.run_id)
            if await deps.persistence.increment_outbox_retry(event.id) >= max_retries:
                await deps.persistence.move_to_dlq(event.id, deps.clock.now())
            continue
        delivered.append(event.id)
    await deps.persistence.mark_published(delivered, deps.clock.now())
    return OutboxFlushResult(published=len(delivered))


async def replay_dlq(deps: Deps, cmd: PluginReplayDLQ) -> PluginReplayDLQResult:
    """Put dead-lettered events back in line with a fresh retry count."""
    return PluginReplayDLQResult(replayed=await deps.persistence.replay_dlq(cmd.max_events))
