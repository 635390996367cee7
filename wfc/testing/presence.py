"""The fleet part of the port conformance suite: plans, workers, the outbox's flusher.

Plans are kept by fingerprint, the first copy staying; a worker's announcement
keeps its first start and moves its expiry on; a retired or expired worker is
not alive. While one flusher holds the outbox, a second gets None on a store
that several processes share (PostgreSQL), and reads and marks events through
what it gets. Subclass `PresenceConformance` beside `PortConformance`, with the
same `ports` fixture.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import replace
from datetime import timedelta

from wfc.runtime.ports import Persistence
from wfc.runtime.records import PlanRecord, WorkerRecord
from wfc.testing.conformance import Ports, a_run, an_event


def _worker(ports: Ports, worker_id: str, plans: list[str], ttl_s: int = 30) -> WorkerRecord:
    now = ports.clock.now()
    return WorkerRecord(
        worker_id=worker_id,
        plans=plans,
        started_at=now,
        seen_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )


async def _try_flush(p: Persistence) -> bool:
    async with p.outbox_flusher() as flusher:
        return flusher is not None


class PresenceConformance:
    async def test_a_plan_is_kept_once_by_its_fingerprint(self, ports: Ports) -> None:
        p = ports.persistence
        now = ports.clock.now()
        first = PlanRecord(
            fingerprint="sha256:a", workflow_id="wf", workflow_name="Wf", plan="{}", recorded_at=now
        )
        await p.record_plans([first])
        await p.record_plans([replace(first, plan='{"changed": true}')])
        assert await p.get_plan("sha256:a") == first
        assert await p.get_plan("sha256:b") is None
        await p.record_plans([])

    async def test_workers_are_alive_until_their_announcement_expires_or_they_retire(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.announce_worker(_worker(ports, "w1", ["sha256:a"]))
        started = ports.clock.now()
        ports.clock.advance(seconds=20)
        await p.announce_worker(_worker(ports, "w1", ["sha256:a", "sha256:b"]))
        await p.announce_worker(_worker(ports, "w2", ["sha256:c"], ttl_s=5))
        live = await p.live_workers(ports.clock.now())
        assert [w.worker_id for w in live] == ["w1", "w2"]
        assert live[0].plans == ["sha256:a", "sha256:b"] and live[0].started_at == started
        ports.clock.advance(seconds=10)  # w2's announcement has expired
        assert [w.worker_id for w in await p.live_workers(ports.clock.now())] == ["w1"]
        await p.retire_worker("w1")
        await p.retire_worker("nobody")
        assert await p.live_workers(ports.clock.now()) == []

    async def test_one_outbox_flusher_at_a_time_where_processes_share_the_store(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        await p.append_outbox([an_event(ports.clock, "e1", "r1")])
        shared = getattr(getattr(p, "engine", None), "dialect", None)
        async with p.outbox_flusher() as first:
            assert first is not None
            [event] = await first.unpublished_outbox(10)
            if shared is not None and shared.name == "postgresql":
                # As another worker would: its own task, none of this one's connections.
                other = asyncio.create_task(_try_flush(p), context=contextvars.Context())
                assert await other is False
            await first.mark_published([event], ports.clock.now())
        assert await p.unpublished_outbox(10) == []
        async with p.outbox_flusher() as again:  # released with the block
            assert again is not None
