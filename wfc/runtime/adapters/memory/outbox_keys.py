"""The memory persistence's outbox and idempotency keys, apart from its runs and stages.

Both are written by every command (each transaction's events, each command's key) and
read by the outbox flusher and by replays; they share nothing with the run and stage
tables but the journal, so they live here and `persistence._MemoryStore` inherits them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from wfc.errors import RecordNotFoundError
from wfc.runtime.adapters.memory.tables import MISSING, EventKey, IdempotencyEntry, TableWriter
from wfc.runtime.copies import changed, json_copy
from wfc.runtime.ports import Clock
from wfc.runtime.records import (
    Acquired,
    IdempotencyClaim,
    InProgress,
    JsonObject,
    NewOutboxEvent,
    OutboxRecord,
    Replay,
)


class OutboxAndKeys(TableWriter):
    """The outbox's and the idempotency keys' `Persistence` methods over the tables."""

    _clock: Clock  # set by the store that inherits these methods

    # -- outbox ----------------------------------------------------------
    # Events are keyed by (run id, sequence), and `position` is the append number.
    async def append_outbox(self, events: Sequence[NewOutboxEvent]) -> list[OutboxRecord]:
        return self._append_events(events)

    async def unpublished_outbox(
        self, limit: int, types: frozenset[str] | None = None
    ) -> list[OutboxRecord]:
        # In append order: the index maps each waiting event to its position.
        return [self._t.outbox[key] for key in self._waiting(limit, types, wanted=True)]

    async def mark_unwanted_published(
        self, wanted: frozenset[str], at: datetime, limit: int
    ) -> int:
        unwanted = self._waiting(limit, wanted, wanted=False)
        await self.mark_published([self._t.outbox[key] for key in unwanted], at)
        return len(unwanted)

    def _waiting(
        self, limit: int, types: frozenset[str] | None, *, wanted: bool
    ) -> list[tuple[str, int]]:
        """The oldest `limit` waiting events whose type is in `types` (`wanted`) or not."""
        unpublished, outbox = self._t.unpublished, self._t.outbox
        keys = (
            unpublished
            if types is None
            else [key for key in unpublished if (outbox[key].event_type in types) is wanted]
        )
        return heapq.nsmallest(limit, keys, key=unpublished.__getitem__)

    async def mark_published(self, events: Sequence[OutboxRecord], at: datetime) -> None:
        # Every event of every run passes here, and a delivered event's record is seldom
        # read again (a test's inspection): its `published_at` is kept apart rather than a
        # copy of the record made per event, and a copy made to carry it when it is read
        # (`_event`). Published, it leaves the flush's index, as `_write_event` would make it.
        # `_set`'s and `_pop`'s journaling written out: every event of every run passes here.
        t, journal = self._t, self._journal
        outbox, unpublished, published = t.outbox, t.unpublished, t.published
        for event in events:
            key = (event.run_id, event.sequence)
            if key not in outbox:
                raise RecordNotFoundError("OutboxEvent", event.id)
            waiting = unpublished.get(key, MISSING)
            if journal is not None:
                journal.append((published, key, published.get(key, MISSING)))
                if waiting is not MISSING:
                    journal.append((unpublished, key, waiting))
            published[key] = at
            if waiting is not MISSING:
                del unpublished[key]

    def _event(self, key: EventKey) -> OutboxRecord:
        """The stored event as it is: `published_at` included, from `published` when it was
        published since it was stored (a copy made for the reader; reading writes
        nothing). The time in `published` is the latest, so it wins."""
        t = self._t
        record = t.outbox[key]
        at = t.published.get(key)
        return record if at is None else changed(record, {"published_at": at})

    async def increment_outbox_retry(self, event: OutboxRecord) -> int:
        return self._change_event(
            event, lambda e: replace(e, retry_count=e.retry_count + 1)
        ).retry_count

    async def move_to_dlq(self, event: OutboxRecord, at: datetime) -> None:
        self._change_event(event, lambda e: replace(e, dlq_at=at))

    async def replay_dlq(self, limit: int) -> int:
        in_dlq = self._t.parked
        parked = heapq.nsmallest(limit, in_dlq, key=in_dlq.__getitem__)
        for key in parked:
            self._change_event(
                self._t.outbox[key], lambda e: replace(e, dlq_at=None, retry_count=0)
            )
        return len(parked)

    async def outbox_of_run(self, run_id: str) -> list[OutboxRecord]:
        last = self._t.last_sequence.get(run_id, 0)  # its events: sequences 1 to its last
        return [self._event((run_id, sequence)) for sequence in range(1, last + 1)]

    def _change_event(
        self, event: OutboxRecord, change: Callable[[OutboxRecord], OutboxRecord]
    ) -> OutboxRecord:
        key = (event.run_id, event.sequence)
        if key not in self._t.outbox:
            raise RecordNotFoundError("OutboxEvent", event.id)
        updated = change(self._event(key))
        self._write_event(updated)
        return updated

    # -- idempotency -----------------------------------------------------
    async def acquire_idempotency_key(
        self,
        key: str,
        command_type: str,
        now: datetime,
        stale_after: timedelta | None,
        *,
        predict: bool = False,
    ) -> IdempotencyClaim:
        entry = self._t.keys.get((key, command_type))
        if entry is None:
            self._set(self._t.keys, (key, command_type), IdempotencyEntry(started_at=now))
            return Acquired()
        if entry.result is not None:
            return Replay(result=entry.result)
        if stale_after is not None and now - entry.started_at >= stale_after:
            self._set(self._t.keys, (key, command_type), replace(entry, started_at=now))
            return Acquired()
        return InProgress()

    async def complete_idempotency_key(
        self, key: str, command_type: str, result: JsonObject
    ) -> None:
        entry = self._t.keys.get((key, command_type)) or IdempotencyEntry(self._clock.now())
        self._set(self._t.keys, (key, command_type), changed(entry, {"result": json_copy(result)}))

    async def release_idempotency_key(self, key: str, command_type: str) -> None:
        self._pop(self._t.keys, (key, command_type))
