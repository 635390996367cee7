"""The port conformance suite: one contract for every adapter (memory, SQLite, PostgreSQL, yours).

Subclass `PortConformance` in a pytest module and provide a `ports` fixture
that yields fresh, empty `Ports` whose adapters share the given `FakeClock`:

```python
class TestMyAdapters(PortConformance):
    @pytest.fixture
    async def ports(self) -> AsyncIterator[Ports]:
        clock = FakeClock()
        storage = my_storage(clock)
        yield Ports(clock=clock, persistence=..., jobs=..., blobs=..., ai_calls=...)
        await storage.close()
```

The tests use only the port methods, so they hold any adapter to the same
behaviour: versions and stale writes, rollback, claim order, leases,
retries, hand-offs, idempotency, outbox sequencing, DLQ, prefix listing, and races.
Requires pytest and pytest-asyncio (`asyncio_mode = "auto"`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from wfc.errors import ExpectationFailed, RecordNotFoundError, StaleVersionError
from wfc.runtime.ai_records import AICallRecord
from wfc.runtime.records import Acquired, Replay, Status
from wfc.testing.job_conformance import JobConformance
from wfc.testing.outbox_conformance import OutboxConformance
from wfc.testing.port_fixtures import (
    MOVES,
    Ports,
    a_job,
    a_run,
    a_running_stage,
    a_stage,
    an_event,
    move_under,
)

# The suite, and what the suites beside it (`fencing`, `limits` …) build their cases from.
__all__ = [
    "MOVES",
    "PortConformance",
    "Ports",
    "a_job",
    "a_run",
    "a_running_stage",
    "a_stage",
    "an_event",
    "move_under",
]


class PortConformance(OutboxConformance, JobConformance):
    """Every contract of spec §8 the kernel relies on, as tests over a `ports` fixture."""

    # -- runs --------------------------------------------------------------

    async def test_runs_round_trip_with_timezone_aware_instants(self, ports: Ports) -> None:
        run = a_run(ports.clock, "r1")
        await ports.persistence.create_run(run)
        stored = await ports.persistence.get_run("r1")
        assert stored == run
        assert stored is not None and stored.created_at.tzinfo is not None
        assert await ports.persistence.get_run("nope") is None

    async def test_update_bumps_version_changes_only_given_fields(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(replace(a_run(ports.clock, "r1"), output={"x": 1}))
        ports.clock.advance(seconds=5)
        updated = await p.update_run("r1", {"status": Status.RUNNING, "completed_at": None})
        assert (updated.version, updated.status, updated.output) == (2, Status.RUNNING, {"x": 1})
        assert updated.updated_at == ports.clock.now()
        cleared = await p.update_run("r1", {"output": None, "error": {"code": "X"}})
        assert (cleared.output, cleared.error, cleared.version) == (None, {"code": "X"}, 3)

    async def test_a_stale_expected_version_changes_nothing(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        await p.update_run("r1", {}, expected_version=1)
        with pytest.raises(StaleVersionError) as caught:
            await p.update_run("r1", {"status": Status.FAILED}, expected_version=1)
        assert (caught.value.expected, caught.value.actual) == (1, 2)
        stored = await p.get_run("r1")
        assert stored is not None and stored.status is Status.PENDING
        with pytest.raises(RecordNotFoundError):
            await p.update_run("nope", {})

    async def test_a_raising_transaction_rolls_back(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        with pytest.raises(RuntimeError):
            async with p.transaction() as tx:
                await tx.update_run("r1", {"status": Status.RUNNING})
                await tx.upsert_stage(a_stage(ports.clock, "r1", "a"), {})
                await tx.append_outbox([an_event(ports.clock, "e1", "r1")])
                raise RuntimeError("abort")
        stored = await p.get_run("r1")
        assert stored is not None and (stored.status, stored.version) == (Status.PENDING, 1)
        assert await p.stages_of_run("r1") == []
        assert await p.outbox_of_run("r1") == []

    async def test_claims_take_priority_then_age(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "old-low", priority=1))
        ports.clock.advance(seconds=1)
        await p.create_run(a_run(ports.clock, "high", priority=9))
        ports.clock.advance(seconds=1)
        await p.create_run(a_run(ports.clock, "new-low", priority=1))
        order, others = [], []
        while (claim := await p.claim_next_pending_run()) is not None:
            run = claim.run
            assert (run.status, run.version, run.started_at) == (
                Status.RUNNING,
                2,
                ports.clock.now(),
            )
            order.append(run.id)
            others.append(claim.others_pending)
        assert order == ["high", "old-low", "new-low"]
        assert others == [True, True, False]  # the last claim saw nothing else PENDING

    async def test_concurrent_claimers_take_disjoint_runs(self, ports: Ports) -> None:
        p = ports.persistence
        for i in range(3):
            await p.create_run(a_run(ports.clock, f"r{i}"))
        claimed = await asyncio.gather(*(p.claim_next_pending_run() for _ in range(6)))
        ids = [c.run.id for c in claimed if c is not None]
        assert sorted(ids) == ["r0", "r1", "r2"]

    async def test_stuck_runs_look_at_run_and_stage_activity(self, ports: Ports) -> None:
        p = ports.persistence
        for run_id in ("quiet", "busy", "pending"):
            await p.create_run(a_run(ports.clock, run_id))
        await p.update_run("quiet", {"status": Status.RUNNING})
        await p.update_run("busy", {"status": Status.RUNNING})
        stage = await p.upsert_stage(a_stage(ports.clock, "busy", "a"), {})
        since = ports.clock.now()
        ports.clock.advance(minutes=1)
        await p.update_stage(stage.id, {"status": Status.RUNNING})
        assert [r.id for r in await p.stuck_runs(since)] == ["quiet"]

    async def test_list_runs_newest_first_with_filters(self, ports: Ports) -> None:
        p = ports.persistence
        for i, status in enumerate([Status.PENDING, Status.RUNNING, Status.PENDING]):
            await p.create_run(a_run(ports.clock, f"r{i}", status=status))
            ports.clock.advance(seconds=1)
        assert [r.id for r in await p.list_runs()] == ["r2", "r1", "r0"]
        assert [r.id for r in await p.list_runs(status=Status.PENDING, limit=1)] == ["r2"]
        assert await p.list_runs(workflow_id="other") == []

    # -- stages ------------------------------------------------------------

    async def test_upsert_inserts_once_then_updates(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        created = await p.upsert_stage(a_stage(ports.clock, "r1", "a"), {"status": Status.RUNNING})
        assert (created.status, created.version) == (Status.PENDING, 1)
        again = await p.upsert_stage(
            replace(a_stage(ports.clock, "r1", "a"), id="other-id"), {"status": Status.RUNNING}
        )
        assert (again.id, again.status, again.version) == (created.id, Status.RUNNING, 2)
        assert await p.get_stage("r1", "a") == again

    async def test_stages_are_ordered_by_group_then_number(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        for stage_id, group, number in [("c", 2, 3), ("a", 1, 1), ("b", 2, 2)]:
            await p.upsert_stage(
                a_stage(ports.clock, "r1", stage_id, group=group, number=number), {}
            )
        assert [s.stage_id for s in await p.stages_of_run("r1")] == ["a", "b", "c"]
        b = await p.get_stage("r1", "b")
        assert b is not None
        await p.delete_stages([b.id])
        assert [s.stage_id for s in await p.stages_of_run("r1")] == ["a", "c"]

    async def test_a_stage_outcome_is_written_only_while_its_run_runs(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        await p.upsert_stage(a_stage(ports.clock, "r1", "a"), {})
        assert await p.update_stage_while_running("r1/a", "r1", {"error": "x"}) is None
        await p.update_run("r1", {"status": Status.RUNNING})
        async with p.transaction() as tx:
            done = await tx.update_stage_while_running(
                "r1/a", "r1", {"status": Status.COMPLETED, "metrics": {"n": 1}}
            )
        assert done is not None and (done.status, done.metrics, done.version) == (
            Status.COMPLETED,
            {"n": 1},
            2,
        )
        await p.update_run("r1", {"status": Status.CANCELLED})
        assert await p.update_stage_while_running("r1/a", "r1", {"error": "late"}) is None
        assert await p.get_stage("r1", "a") == done
        with pytest.raises(RecordNotFoundError):
            await p.update_stage_while_running("r1/missing", "r1", {"error": "x"})

    async def test_a_completed_stage_locks_its_run_and_is_written_only_while_it_runs(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        assert await p.lock_run_and_update_stage("r1", "r1/a", {"error": "x"}) is None
        await p.create_run(a_run(ports.clock, "r1"))
        await p.upsert_stage(a_stage(ports.clock, "r1", "a"), {})
        async with p.transaction() as tx:  # PENDING: the stage is left alone
            assert await tx.lock_run_and_update_stage("r1", "r1/a", {"error": "x"}) is None
        assert (await p.get_stage("r1", "a")) == (await p.stages_of_run("r1"))[0]
        assert (await p.stages_of_run("r1"))[0].error is None
        running = await p.update_run("r1", {"status": Status.RUNNING})
        async with p.transaction() as tx:
            locked = await tx.lock_run_and_update_stage(
                "r1", "r1/a", {"status": Status.COMPLETED, "metrics": {"n": 1}}
            )
        assert locked is not None
        run, stage = locked
        assert run == await p.get_run("r1")
        assert (run.status, run.version) == (Status.RUNNING, running.version + 1)
        assert run.input == running.input and run.updated_at >= running.updated_at
        assert stage == await p.get_stage("r1", "a")
        assert (stage.status, stage.metrics, stage.version) == (Status.COMPLETED, {"n": 1}, 2)
        with pytest.raises(RecordNotFoundError):
            async with p.transaction() as tx:
                await tx.lock_run_and_update_stage("r1", "r1/missing", {"error": "x"})
        await p.update_run("r1", {"status": Status.CANCELLED})
        async with p.transaction() as tx:
            assert await tx.lock_run_and_update_stage("r1", "r1/a", {"error": "late"}) is None
        assert await p.get_stage("r1", "a") == stage

    async def test_a_lock_taken_as_expected_commits_what_it_answered(self, ports: Ports) -> None:
        """`expect` that holds: the answers are what reading would have given, and the
        transaction's writes all land (the run's own folded into its lock)."""
        p = ports.persistence
        run, row, job_id = await a_running_stage(ports)
        next_row = a_stage(ports.clock, "r1", "b", group=2, number=2)
        async with p.transaction() as tx:
            locked = await tx.lock_run_and_update_stage(
                "r1", row.id, {"status": Status.COMPLETED, "metrics": {"n": 1}}, expect=(run, row)
            )
            assert locked is not None
            locked_run, done = locked
            await ports.blobs.put("r1/a/output", b"{}")
            opened = await tx.upsert_stage(next_row, {})
            await ports.jobs.complete(job_id)
            finished = await tx.update_run(
                "r1",
                {"status": Status.COMPLETED, "output": {"ok": True}},
                expected_version=locked_run.version,
            )
            await tx.append_outbox(
                [an_event(ports.clock, "e2", "r1"), an_event(ports.clock, "e3", "r1")]
            )
        assert (locked_run.version, finished.version) == (run.version + 1, run.version + 2)
        assert await p.get_run("r1") == finished
        assert (finished.status, finished.output) == (Status.COMPLETED, {"ok": True})
        assert await p.get_stage("r1", "a") == done
        assert (done.status, done.metrics, done.version) == (Status.COMPLETED, {"n": 1}, 2)
        assert opened == next_row == await p.get_stage("r1", "b")
        assert await ports.blobs.get("r1/a/output") == b"{}"
        assert {j.id: j.status for j in await ports.jobs.jobs_of_run("r1")} == {
            job_id: Status.COMPLETED
        }
        events = await p.outbox_of_run("r1")
        assert [(e.payload["n"], e.sequence) for e in events] == [("e1", 1), ("e2", 2), ("e3", 3)]

    @pytest.mark.parametrize("moved", MOVES)
    async def test_a_lock_expected_wrongly_is_read_or_writes_nothing(
        self, ports: Ports, moved: str
    ) -> None:
        """`expect` that no longer holds: the adapter either read (its answers are the
        truth, and the transaction commits as any other) or raises `ExpectationFailed`,
        having written nothing at all."""
        p = ports.persistence
        run, row, job_id = await a_running_stage(ports)
        job_id = await move_under(ports, moved, row, job_id)
        before = (
            await p.get_run("r1"),
            await p.stages_of_run("r1"),
            await p.outbox_of_run("r1"),
            await ports.jobs.jobs_of_run("r1"),
        )
        fresh = replace(a_stage(ports.clock, "r1", "b", group=2, number=2), id="r1/b-new")
        try:
            async with p.transaction() as tx:
                locked = await tx.lock_run_and_update_stage(
                    "r1", row.id, {"status": Status.COMPLETED}, expect=(run, row)
                )
                if locked is None:  # read: the run is not RUNNING
                    assert moved == "cancelled"
                    return
                locked_run, done = locked
                opened = await tx.upsert_stage(fresh, {})
                try:
                    await ports.jobs.complete(job_id)
                except RecordNotFoundError:  # read: the job is not there to complete
                    assert moved == "job"
                    raise
                await tx.append_outbox([an_event(ports.clock, "e2", "r1")])
        except (ExpectationFailed, RecordNotFoundError):
            after = (
                await p.get_run("r1"),
                await p.stages_of_run("r1"),
                await p.outbox_of_run("r1"),
                await ports.jobs.jobs_of_run("r1"),
            )
            assert after == before
            return
        # Read: what the adapter answered is what the database holds.
        assert moved in ("run", "stage", "next row")
        assert locked_run == await p.get_run("r1")
        assert locked_run.version == before[0].version + 1  # type: ignore[union-attr]
        assert done == await p.get_stage("r1", "a")
        assert opened == await p.get_stage("r1", "b")
        assert (opened.id == fresh.id) == (moved != "next row")

    async def test_a_key_acquired_by_prediction_is_written_where_it_is_completed(
        self, ports: Ports
    ) -> None:
        """`predict`: the key is `Acquired` (written, or to be written by the transaction
        that completes it); when it was there already, either the adapter says so, or the
        transaction completing it fails whole."""
        p, now = ports.persistence, ports.clock.now()
        claim = await p.acquire_idempotency_key("k", "run.create", now, None, predict=True)
        assert isinstance(claim, Acquired)
        async with p.transaction() as tx:
            await tx.complete_idempotency_key("k", "run.create", {"ok": 1})
        assert await p.acquire_idempotency_key("k", "run.create", now, None) == Replay(
            result={"ok": 1}
        )
        again = await p.acquire_idempotency_key("k", "run.create", now, None, predict=True)
        if isinstance(again, Acquired):  # predicted: the completing transaction fails whole
            with pytest.raises(ExpectationFailed):
                async with p.transaction() as tx:
                    await tx.create_run(a_run(ports.clock, "r1"))
                    await tx.complete_idempotency_key("k", "run.create", {"ok": 2})
        else:
            assert again == Replay(result={"ok": 1})
        assert await p.acquire_idempotency_key("k", "run.create", now, None) == Replay(
            result={"ok": 1}
        )

    async def test_a_run_is_read_with_its_stages_in_one_call(self, ports: Ports) -> None:
        p = ports.persistence
        assert await p.run_with_stages("r1") is None
        await p.create_run(a_run(ports.clock, "r1"))
        await p.create_run(a_run(ports.clock, "r2"))
        assert await p.run_with_stages("r1") == (await p.get_run("r1"), [])
        for stage_id, group, number in [("c", 2, 3), ("a", 1, 1), ("b", 2, 2)]:
            await p.upsert_stage(
                a_stage(ports.clock, "r1", stage_id, group=group, number=number),
                {},
            )
        await p.upsert_stage(a_stage(ports.clock, "r2", "x"), {})
        await p.update_stage("r1/a", {"status": Status.RUNNING, "metrics": {"totalCost": 0.5}})
        found = await p.run_with_stages("r1")
        assert found is not None
        run, rows = found
        assert run == await p.get_run("r1")
        assert rows == await p.stages_of_run("r1")
        assert [(s.stage_id, s.status) for s in rows] == [
            ("a", Status.RUNNING),
            ("b", Status.PENDING),
            ("c", Status.PENDING),
        ]

    async def test_stage_updates_are_versioned(self, ports: Ports) -> None:
        p = ports.persistence
        await p.create_run(a_run(ports.clock, "r1"))
        row = await p.upsert_stage(a_stage(ports.clock, "r1", "a"), {})
        await p.update_stage(row.id, {"metrics": {"total_cost": 1.5}}, expected_version=1)
        with pytest.raises(StaleVersionError):
            await p.update_stage(row.id, {"error": "x"}, expected_version=1)
        with pytest.raises(RecordNotFoundError):
            await p.update_stage("nope", {})

    # -- blobs and the AI ledger -------------------------------------------

    async def test_blobs(self, ports: Ports) -> None:
        b = ports.blobs
        await b.put("runs/w/r1/a/output.json", b"1")
        await b.put("runs/w/r1/a/output.json", b"2")
        await b.put("runs/w/r1/b/output.json", b"3")
        await b.put("runs/w/r10/a_%/x", b"4")
        assert await b.get("runs/w/r1/a/output.json") == b"2"
        assert await b.list("runs/w/r1/") == ["runs/w/r1/a/output.json", "runs/w/r1/b/output.json"]
        assert await b.list("runs/w/r10/a_%") == ["runs/w/r10/a_%/x"]
        assert await b.exists("runs/w/r1/b/output.json")
        await b.delete("runs/w/r1/b/output.json")
        await b.delete("runs/w/r1/b/output.json")
        assert not await b.exists("runs/w/r1/b/output.json")
        with pytest.raises(KeyError):
            await b.get("missing")

    async def test_ai_ledger(self, ports: Ports) -> None:
        ledger = ports.ai_calls

        def call(call_id: str, topic: str, model: str = "m") -> AICallRecord:
            return AICallRecord(
                id=call_id,
                topic=topic,
                call_type="text",
                model_key=model,
                model_id=model,
                prompt="p",
                response="r",
                input_tokens=10,
                output_tokens=2,
                cost=0.5,
                created_at=datetime(2025, 1, 1, tzinfo=UTC),
            )

        await ledger.log_call(call("1", "workflow.ab.stage.x"))
        await ledger.log_call(call("2", "workflow.abc.stage.x"))
        assert await ledger.log_batch_results("b1", [call("3", "workflow.ab.stage.y", "big")])
        assert not await ledger.log_batch_results("b1", [call("4", "workflow.ab.stage.y")])
        stats = await ledger.stats("workflow.ab")
        assert (stats.total_calls, stats.total_input_tokens, stats.total_cost) == (2, 20, 1.0)
        assert sorted(stats.per_model) == ["big", "m"]
        assert await ledger.is_recorded("b1") and not await ledger.is_recorded("b2")
