"""The signals part of the port conformance suite (`Persistence.add_signal`, `take_signal`).

A run's idempotency key names one signal: a second add under it returns the
first and writes nothing. Signals of one name are taken first sent first, each
once, and a taken one records who took it and when; a transaction that rolls
back takes nothing. Pruning a run deletes its signals. Subclass
`SignalsConformance` beside `PortConformance`, with the same `ports` fixture.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from wfc.runtime.records import SignalRecord, Status
from wfc.testing.conformance import Ports, a_run


def a_signal(
    ports: Ports, signal_id: str, name: str, payload: Any, *, run_id: str = "r1"
) -> SignalRecord:
    """An unconsumed signal keyed by its id."""
    return SignalRecord(
        id=signal_id,
        run_id=run_id,
        name=name,
        idempotency_key=f"key-{signal_id}",
        payload=payload,
        sent_at=ports.clock.now(),
    )


class SignalsConformance:
    async def test_a_key_names_one_signal_per_run(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        await p.create_run(a_run(ports.clock, "r2", status=Status.RUNNING))
        first = await p.add_signal(a_signal(ports, "s1", "approve", {"ok": True}))
        again = await p.add_signal(
            SignalRecord(
                id="s1-again",
                run_id="r1",
                name="approve",
                idempotency_key="key-s1",
                payload={"ok": False},
                sent_at=ports.clock.now(),
            )
        )
        assert again == first
        assert first.payload == {"ok": True} and first.consumed_at is None
        other = await p.add_signal(
            SignalRecord(
                id="s1-other-run",
                run_id="r2",
                name="approve",
                idempotency_key="key-s1",
                payload=None,
                sent_at=ports.clock.now(),
            )
        )
        assert other.id == "s1-other-run" and other.payload is None
        assert [s.id for s in await p.signals_of_run("r1")] == ["s1"]

    async def test_signals_of_a_name_are_taken_first_sent_first_and_once(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        await p.add_signal(a_signal(ports, "s1", "approve", {"n": 1}))
        await p.add_signal(a_signal(ports, "s2", "other", {"n": 2}))
        await p.add_signal(a_signal(ports, "s3", "approve", [3]))
        sent = await p.signals_of_run("r1")
        assert [s.id for s in sent] == ["s1", "s2", "s3"]
        assert sent[0].sequence < sent[1].sequence < sent[2].sequence
        ports.clock.advance(seconds=5)
        at = ports.clock.now()
        taken = await p.take_signal("r1", "approve", "stage-row-1", at)
        assert taken is not None and taken.id == "s1" and taken.payload == {"n": 1}
        assert taken.consumed_by == "stage-row-1" and taken.consumed_at == at
        second = await p.take_signal("r1", "approve", "stage-row-2", at + timedelta(seconds=1))
        assert second is not None and (second.id, second.payload) == ("s3", [3])
        assert await p.take_signal("r1", "approve", "stage-row-3", at) is None
        assert await p.take_signal("r2", "other", "stage-row-3", at) is None
        kept = {s.id: s.consumed_by for s in await p.signals_of_run("r1")}
        assert kept == {"s1": "stage-row-1", "s2": None, "s3": "stage-row-2"}

    async def test_a_rolled_back_take_takes_nothing(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        await p.add_signal(a_signal(ports, "s1", "approve", {}))

        class Boom(Exception):
            pass

        try:
            async with p.transaction() as tx:
                assert await tx.take_signal("r1", "approve", "row", ports.clock.now()) is not None
                raise Boom
        except Boom:
            pass
        async with p.transaction() as tx:
            taken = await tx.take_signal("r1", "approve", "row-2", ports.clock.now())
        assert taken is not None and taken.consumed_by == "row-2"

    async def test_pruning_a_run_deletes_its_signals(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
        await p.add_signal(a_signal(ports, "s1", "approve", {}))
        await p.update_run("r1", {"status": Status.COMPLETED, "completed_at": ports.clock.now()})
        ports.clock.advance(days=2)
        pruned = await p.prune_runs(ports.clock.now(), [Status.COMPLETED], 10)
        assert [run.id for run in pruned] == ["r1"]
        assert await p.signals_of_run("r1") == []
