"""The port conformance suite's logs, outbox and idempotency keys: part of
`PortConformance` (`wfc.testing.conformance`), which runs them with the rest."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from wfc.runtime.records import Acquired, InProgress, LogRecord, Replay
from wfc.testing.port_fixtures import (
    Ports,
    a_run,
    an_event,
)


class OutboxConformance:
    """Logs in write order; outbox sequences, delivery bookkeeping, DLQ; idempotency keys."""

    # -- logs, outbox, idempotency ----------------------------------------

    async def test_logs_keep_write_order(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        for i in range(3):
            await p.add_log(
                LogRecord(
                    id=f"l{i}",
                    run_id="r1",
                    stage_record_id=None,
                    level="INFO",
                    message=f"m{i}",
                    fields={"i": i},
                    created_at=ports.clock.now(),
                )
            )
        assert [(log.message, log.fields) for log in await p.logs_of_run("r1")] == [
            ("m0", {"i": 0}),
            ("m1", {"i": 1}),
            ("m2", {"i": 2}),
        ]

    async def test_outbox_sequences_are_per_run_and_gap_free(self, ports: Ports) -> None:
        p = ports.persistence
        await p.append_outbox([an_event(ports.clock, "a1", "a"), an_event(ports.clock, "b1", "b")])
        await p.append_outbox([an_event(ports.clock, "a2", "a"), an_event(ports.clock, "a3", "a")])
        assert [(e.payload["n"], e.id) for e in await p.outbox_of_run("a")] == [
            ("a1", "a:1"),
            ("a2", "a:2"),
            ("a3", "a:3"),
        ]
        assert await p.append_outbox([]) == []

    async def test_concurrent_appends_to_one_run_never_collide(self, ports: Ports) -> None:
        p = ports.persistence

        async def append(i: int) -> None:
            async with p.transaction() as tx:
                await tx.append_outbox([an_event(ports.clock, f"e{i}", "r")])

        await asyncio.gather(*(append(i) for i in range(10)))
        assert sorted(e.sequence for e in await p.outbox_of_run("r")) == list(range(1, 11))

    async def test_outbox_delivery_bookkeeping(self, ports: Ports) -> None:
        p = ports.persistence
        await p.append_outbox([an_event(ports.clock, f"e{i}", "r") for i in range(3)])
        first = await p.unpublished_outbox(2)
        assert [e.payload["n"] for e in first] == ["e0", "e1"]
        e0, e1 = first
        await p.mark_published([e0], ports.clock.now())
        assert await p.increment_outbox_retry(e1) == 1
        assert await p.increment_outbox_retry(e1) == 2
        await p.move_to_dlq(e1, ports.clock.now())
        assert [e.payload["n"] for e in await p.unpublished_outbox(10)] == ["e2"]
        assert await p.replay_dlq(10) == 1
        replayed = [e for e in await p.unpublished_outbox(10) if e.id == e1.id]
        assert replayed[0].retry_count == 0 and replayed[0].dlq_at is None
        assert replayed[0].payload == {"n": "e1"}
        assert [(e.id, e.published_at) for e in await p.outbox_of_run("r")] == [
            ("r:1", ports.clock.now()),
            ("r:2", None),
            ("r:3", None),
        ]

    async def test_outbox_events_no_sink_wants(self, ports: Ports) -> None:
        p, now = ports.persistence, ports.clock.now()
        kinds = ["stage:progress", "stage:started"] * 2 + ["workflow:started"]
        await p.append_outbox([an_event(ports.clock, f"e{i}", "r", k) for i, k in enumerate(kinds)])
        wanted = frozenset({"stage:progress"})
        assert [e.payload["n"] for e in await p.unpublished_outbox(10, wanted)] == ["e0", "e2"]
        [e3] = [e for e in await p.unpublished_outbox(10) if e.payload["n"] == "e3"]
        await p.move_to_dlq(e3, now)  # parked: not marked
        assert await p.mark_unwanted_published(wanted, now, 1) == 1  # the oldest first
        assert await p.mark_unwanted_published(wanted, now, 10) == 1
        assert await p.mark_unwanted_published(wanted, now, 10) == 0
        assert [(e.payload["n"], e.published_at) for e in await p.outbox_of_run("r")] == [
            ("e0", None),
            ("e1", now),
            ("e2", None),
            ("e3", None),
            ("e4", now),
        ]
        assert await p.mark_unwanted_published(frozenset(), now, 10) == 2
        assert await p.unpublished_outbox(10) == []

    async def test_idempotency_keys(self, ports: Ports) -> None:
        p, now = ports.persistence, ports.clock.now()
        stale = timedelta(minutes=10)
        assert isinstance(await p.acquire_idempotency_key("k", "run.create", now, stale), Acquired)
        assert isinstance(
            await p.acquire_idempotency_key("k", "run.create", now, stale), InProgress
        )
        assert isinstance(await p.acquire_idempotency_key("k", "job.execute", now, stale), Acquired)
        later = now + timedelta(minutes=10)
        assert isinstance(
            await p.acquire_idempotency_key("k", "run.create", later, None), InProgress
        )
        assert isinstance(
            await p.acquire_idempotency_key("k", "run.create", later, stale), Acquired
        )
        await p.complete_idempotency_key("k", "run.create", {"workflow_run_id": "r1"})
        claim = await p.acquire_idempotency_key("k", "run.create", later, stale)
        assert claim == Replay(result={"workflow_run_id": "r1"})
        await p.release_idempotency_key("k", "run.create")
        await p.release_idempotency_key("k", "run.create")  # absent: no error
        assert isinstance(
            await p.acquire_idempotency_key("k", "run.create", later, stale), Acquired
        )

    async def test_one_of_many_concurrent_acquirers_wins(self, ports: Ports) -> None:
        p, now = ports.persistence, ports.clock.now()
        claims = await asyncio.gather(
            *(p.acquire_idempotency_key("k", "run.create", now, None) for _ in range(5))
        )
        assert sum(isinstance(c, Acquired) for c in claims) == 1
