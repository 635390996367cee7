"""The plans-and-workers part of the port conformance suite.

Plans are kept by fingerprint, the first copy staying; a worker's announcement
keeps its first start and moves its expiry on; a retired or expired worker is
not alive. Subclass `PresenceConformance` beside `PortConformance`, with the
same `ports` fixture.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from wfc.runtime.records import PlanRecord, WorkerRecord
from wfc.testing.conformance import Ports


def _worker(ports: Ports, worker_id: str, plans: list[str], ttl_s: int = 30) -> WorkerRecord:
    now = ports.clock.now()
    return WorkerRecord(
        worker_id=worker_id,
        plans=plans,
        started_at=now,
        seen_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
    )


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
