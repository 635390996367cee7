"""The memory store's transactions: a failed one leaves no trace, and none costs what is held.

The store rolls back through an undo journal and answers the kernel's lookups
from indexes (`wfc.runtime.adapters.memory.tables`). These tests hold it to
what that must give: the exact previous state after a rollback, indexes and
table order included; and work per run that does not depend on how many runs
the store holds, counted (lines the adapters execute, bytes a transaction
allocates), never timed.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from pydantic import BaseModel

import wfc.runtime.adapters.memory as memory_adapters
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory.tables import Tables
from wfc.runtime.copies import changed
from wfc.runtime.ports import Persistence
from wfc.runtime.records import (
    ItemRecord,
    LogRecord,
    PlanRecord,
    SignalRecord,
    StageFence,
    Status,
    WorkerRecord,
)
from wfc.testing import (
    FakeClock,
    MemoryJobTransport,
    MemoryPersistence,
    TestKernel,
    make_test_kernel,
)
from wfc.testing.conformance import a_job, a_run, a_stage, an_event

MEMORY_ADAPTERS = str(Path(memory_adapters.__file__).parent)


class Number(BaseModel):
    n: int


async def add_one(ctx: Any) -> Number:
    return Number(n=ctx.input.n + 1)


def seq3_kernel() -> TestKernel:
    """A memory test kernel serving `seq3`: three trivial stages in a row."""
    stages = [define_stage(id=s, input=Number, output=Number, execute=add_one) for s in "abc"]
    builder = WorkflowBuilder("seq3", "Three in a row", input=Number)
    for stage in stages:
        builder = builder.pipe(stage)
    return make_test_kernel(builder.build())


# The tables whose order inspection shows (`all_runs`, `all_logs`…): rows in the same
# order. The other tables and the indexes are lookups: the same keys and values.
ORDERED = ("runs", "stages", "logs", "outbox", "signals")


def contents(value: Any) -> Any:
    """A copy of what a (nested) dict holds, as dicts that compare regardless of order."""
    return {k: contents(v) for k, v in value.items()} if isinstance(value, dict) else value


def store_picture(persistence: MemoryPersistence) -> dict[str, Any]:
    """Every table and index of the store (its private tables: the indexes must roll back
    too), but the id counter, which never goes back, as a database sequence does not."""
    tables: Tables = persistence._t
    return {
        column.name: list(value.items()) if column.name in ORDERED else contents(value)
        for column in fields(Tables)
        if isinstance(value := getattr(tables, column.name), dict)
    }


async def held_runs(tk: TestKernel, count: int) -> None:
    for _ in range(count):
        assert (await tk.run("seq3", {"n": 0})).status is Status.COMPLETED


RUNNING = StageFence(statuses=frozenset({Status.RUNNING}))


def an_item(run_id: str, index: int, tk: TestKernel) -> ItemRecord:
    now = tk.clock.now()
    return ItemRecord(
        id=f"{run_id}/m/{index}",
        run_id=run_id,
        stage_id="m",
        item_index=index,
        status=Status.RUNNING,
        created_at=now,
        updated_at=now,
        attempt=1,
    )


async def some_state(tk: TestKernel) -> MemoryPersistence:
    """Finished runs, and rows of every kind `many_writes` touches: items (one suspended),
    a signal, an event in the DLQ, a worker, an idempotency key in progress."""
    await held_runs(tk, 5)
    persistence, clock = tk.persistence, tk.clock
    assert isinstance(persistence, MemoryPersistence)
    await persistence.create_run(a_run(clock, "kept", status=Status.RUNNING))
    await persistence.upsert_stage(a_stage(clock, "kept", "m"), {})
    for index in range(3):
        await persistence.start_item(an_item("kept", index, tk), {}, RUNNING)
    await persistence.update_item(
        "kept/m/1", {"status": Status.SUSPENDED, "next_poll_at": clock.now()}, fence=RUNNING
    )
    await persistence.add_signal(a_signal_for("kept", "s0", tk))
    (parked,) = await persistence.append_outbox([an_event(clock, "parked", "kept")])
    await persistence.move_to_dlq(parked, clock.now())
    await persistence.announce_worker(a_worker("w1", tk))
    await persistence.acquire_idempotency_key("k0", "cmd", clock.now(), None)
    clock.advance(timedelta(hours=1))
    return persistence


async def many_writes(tx: Persistence, tk: TestKernel, new: str = "new") -> None:
    """Writes of every kind the store has, deletions (rerun, retention) among them."""
    clock = tk.clock
    finished = await tx.list_runs(status=Status.COMPLETED)
    for n in range(50):
        await tx.create_run(a_run(clock, f"{new}-{n}", priority=n % 3))
        await tx.upsert_stage(a_stage(clock, f"{new}-{n}", "a"), {})
        await tx.add_log(a_log(f"{new}-{n}", n, tk))
        await tx.append_outbox([an_event(clock, f"{new}-e-{n}", f"{new}-{n}")])
    assert await tx.claim_next_pending_run() is not None
    await tx.update_run("kept", {"status": Status.FAILED})
    await tx.update_stage("kept/m", {"status": Status.SUSPENDED})
    await tx.update_stage(f"{new}-1/a", {"status": Status.SUSPENDED})
    await tx.update_stage(f"{new}-1/a", {"status": Status.COMPLETED})  # and out again
    await tx.add_signal(a_signal_for("kept", "s1", tk))
    await tx.take_signal("kept", "go", "consumer", clock.now())
    await tx.start_item(an_item("kept", 7, tk), {}, RUNNING)
    await tx.claim_suspended_items(clock.now(), clock.now(), 10)
    await tx.reset_items("kept", "m", (Status.RUNNING,), 1)
    await tx.cancel_items("kept")
    await tx.mark_published(await tx.unpublished_outbox(10), clock.now())
    await tx.replay_dlq(10)
    await tx.increment_outbox_retry((await tx.outbox_of_run(f"{new}-3"))[0])
    await tx.acquire_idempotency_key("k1", "cmd", clock.now(), None)
    await tx.complete_idempotency_key("k0", "cmd", {"done": True})
    await tx.release_idempotency_key("k0", "cmd")
    await tx.record_plans([a_plan(tk)])
    await tx.announce_worker(a_worker("w2", tk))
    await tx.retire_worker("w1")
    await tx.delete_items("kept", ["m"])
    await tx.delete_stages([s.id for s in await tx.stages_of_run(finished[0].id)])
    assert len(await tx.prune_runs(clock.now(), [Status.COMPLETED], 2)) == 2


def indexes_from_rows(t: Tables) -> dict[str, Any]:
    """What every index must hold, worked out from the rows by scanning them all."""
    runs, stages, items = t.runs.values(), t.stages.values(), list(t.items.items())
    events = t.outbox.values()

    def by_run(rows: Any, key: str = "id") -> dict[str, set[Any]]:
        found: dict[str, set[Any]] = {}
        for row in rows:
            found.setdefault(row.run_id, set()).add(getattr(row, key))
        return found

    children: dict[str, set[str]] = {}
    for run in runs:
        if run.parent_run_id is not None:
            children.setdefault(run.parent_run_id, set()).add(run.id)

    return {
        "pending_runs": {r.id for r in runs if r.status is Status.PENDING},
        "running_runs": {r.id for r in runs if r.status is Status.RUNNING},
        "children": children,
        "stages_of": by_run(stages),
        "suspended_stages": {s.id for s in stages if s.status is Status.SUSPENDED},
        "item_stages_of": by_run((i for _, rows in items for i in rows.values()), "stage_id"),
        "suspended_items": {
            i.id for _, rows in items for i in rows.values() if i.status is Status.SUSPENDED
        },
        "logs_of": by_run(t.logs.values()),
        "signals_of": by_run(t.signals.values()),
        # A run's events are numbered 1 to its last sequence, with no gap (`last_sequence`).
        "events_of": by_run(events, "sequence"),
        # A delivered event's `published_at` may be kept apart from its row (`t.published`).
        "unpublished": {
            (e.run_id, e.sequence)
            for e in events
            if e.published_at is None and (e.run_id, e.sequence) not in t.published
            if e.dlq_at is None
        },
        "parked": {(e.run_id, e.sequence) for e in events if e.dlq_at is not None},
        "published_without_event": set(),
    }


def indexes_held(t: Tables) -> dict[str, Any]:
    """The indexes as the store keeps them, in the shape `indexes_from_rows` gives."""
    logs = {run_id: {t.logs[n].id for n in numbers} for run_id, numbers in t.logs_of.items()}
    nested = ("children", "stages_of", "item_stages_of", "signals_of")
    held: dict[str, Any] = {
        name: {owner: set(ids) for owner, ids in getattr(t, name).items() if ids} for name in nested
    }
    held["item_stages_of"] = {
        run_id: {s for s in stage_ids if t.items.get((run_id, s))}
        for run_id, stage_ids in held["item_stages_of"].items()
    }
    held["item_stages_of"] = {k: v for k, v in held["item_stages_of"].items() if v}
    flat = ("pending_runs", "running_runs", "suspended_stages", "suspended_items")
    return (
        held
        | {name: set(getattr(t, name)) for name in (*flat, "unpublished", "parked")}
        | {"logs_of": {k: v for k, v in logs.items() if v}}
        | {"events_of": {k: set(range(1, n + 1)) for k, n in t.last_sequence.items() if n}}
        | {"published_without_event": set(t.published) - set(t.outbox)}
    )


async def test_a_failed_transaction_after_many_writes_leaves_the_store_exactly_as_it_was() -> None:
    tk = seq3_kernel()
    persistence = await some_state(tk)
    before = store_picture(persistence)
    all_before = (persistence.all_runs(), persistence.all_stages(), persistence.all_outbox())

    with pytest.raises(RuntimeError, match="abandoned"):
        async with persistence.transaction() as tx:
            await many_writes(tx, tk)
            assert store_picture(persistence) != before  # the writes were there to undo
            raise RuntimeError("abandoned")

    assert store_picture(persistence) == before
    assert (
        persistence.all_runs(),
        persistence.all_stages(),
        persistence.all_outbox(),
    ) == all_before
    assert indexes_held(persistence._t) == indexes_from_rows(persistence._t)


async def test_the_indexes_agree_with_the_rows_after_many_writes() -> None:
    tk = seq3_kernel()
    persistence = await some_state(tk)
    async with persistence.transaction() as tx:
        await many_writes(tx, tk)
    assert indexes_held(persistence._t) == indexes_from_rows(persistence._t)
    await many_writes(persistence, tk, "again")  # the same writes again, each alone, for good
    assert indexes_held(persistence._t) == indexes_from_rows(persistence._t)


def a_signal_for(run_id: str, signal_id: str, tk: TestKernel) -> SignalRecord:
    return SignalRecord(
        id=signal_id,
        run_id=run_id,
        name="go",
        idempotency_key=f"key-{signal_id}",
        payload={"n": 1},
        sent_at=tk.clock.now(),
    )


def a_log(run_id: str, n: int, tk: TestKernel) -> LogRecord:
    return LogRecord(
        id=f"log-{run_id}-{n}",
        run_id=run_id,
        stage_record_id=None,
        level="INFO",
        message="hello",
        fields={},
        created_at=tk.clock.now(),
    )


def a_worker(worker_id: str, tk: TestKernel) -> WorkerRecord:
    now = tk.clock.now()
    return WorkerRecord(
        worker_id=worker_id,
        plans=["sha256:x"],
        started_at=now,
        seen_at=now,
        expires_at=now + timedelta(minutes=1),
    )


def a_plan(tk: TestKernel) -> PlanRecord:
    return PlanRecord(
        fingerprint="sha256:new",
        workflow_id="seq3",
        workflow_name="Three in a row",
        plan="{}",
        recorded_at=tk.clock.now(),
    )


def lines_run_in(directory: str, action: Callable[[], Any]) -> Callable[[], Any]:
    """`action` wrapped to count the lines executed in modules under `directory`."""

    async def counted() -> int:
        count = 0

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            nonlocal count
            if event == "line":
                count += 1
            return local

        def calls(frame: FrameType, event: str, arg: Any) -> Any:
            return local if frame.f_code.co_filename.startswith(directory) else None

        previous = sys.gettrace()
        sys.settrace(calls)
        try:
            await action()
        finally:
            sys.settrace(previous)
        return count

    return counted


async def test_the_adapters_do_the_same_work_per_run_whatever_the_runs_held() -> None:
    async def lines_for_one_run(held: int) -> int:
        tk = seq3_kernel()
        await held_runs(tk, held)
        assert isinstance(tk.persistence, MemoryPersistence)
        # In the same phase of the periodic yield (every 32nd transaction, when alone):
        # where it falls is not a cost of the runs held.
        tk.persistence._unyielded = 0
        return int(await lines_run_in(MEMORY_ADAPTERS, lambda: held_runs(tk, 1))())

    few, many = await lines_for_one_run(3), await lines_for_one_run(300)
    assert few > 100  # the count sees the adapters at work
    assert many == few


async def test_a_transaction_copies_nothing_of_what_the_store_holds() -> None:
    async def allocated_by_one_update(held: int) -> int:
        tk = seq3_kernel()
        await held_runs(tk, held)
        persistence = tk.persistence
        await persistence.create_run(a_run(tk.clock, "one", status=Status.RUNNING))
        await tk.jobs.enqueue([a_job("one")])
        tracemalloc.start()
        try:
            start, _ = tracemalloc.get_traced_memory()
            async with persistence.transaction() as tx:
                await tx.update_run("one", {"total_tokens": 1})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return peak - start

    few, many = await allocated_by_one_update(3), await allocated_by_one_update(300)
    # A copy of one table of 300 runs alone is over 9 kB (a dict entry per run).
    assert many - few < 2_000


async def test_a_pruned_parent_keeps_naming_the_children_that_are_kept() -> None:
    tk = seq3_kernel()
    persistence = tk.persistence
    clock = tk.clock
    parent = replace(a_run(clock, "parent", status=Status.COMPLETED), completed_at=clock.now())
    await persistence.create_run(parent)
    await persistence.create_run(replace(a_run(clock, "child"), parent_run_id="parent"))
    clock.advance(timedelta(days=1))
    assert [r.id for r in await persistence.prune_runs(clock.now(), [Status.COMPLETED], 10)] == [
        "parent"
    ]
    assert [r.id for r in await persistence.children_of("parent")] == ["child"]


def test_a_changed_record_is_what_dataclasses_replace_makes() -> None:
    clock = FakeClock()
    run = a_run(clock, "r1")
    changes = {"status": Status.RUNNING, "version": 2, "output": {"n": 1}}
    assert changed(run, changes) == replace(run, **changes)  # type: ignore[arg-type]
    assert changed(run, changes) is not run and run.status is Status.PENDING
    stage = a_stage(clock, "r1", "a")
    assert changed(stage, {"attempt": 3}) == replace(stage, attempt=3)
    with pytest.raises(TypeError, match="no field"):
        changed(run, {"statuss": Status.RUNNING})


async def test_the_memory_queue_says_from_its_index_whether_a_job_is_pending() -> None:
    clock = FakeClock()
    jobs = MemoryJobTransport(clock)
    assert not jobs.has_pending()
    later = clock.now() + timedelta(minutes=1)
    [job_id] = await jobs.enqueue([a_job("r1", run_at=later)])
    assert jobs.has_pending()  # due or not
    clock.advance(timedelta(minutes=2))
    [leased] = await jobs.dequeue()
    assert not jobs.has_pending()
    await jobs.release(leased.id, attempt=leased.attempt)
    assert jobs.has_pending() and leased.id == job_id


async def test_a_run_leaves_no_garbage_for_the_cyclic_collector() -> None:
    """Objects freed only by the cyclic GC make it collect often, and each collection walks
    everything a suite's kernel holds: a transaction's unit, held in a cycle by the
    after-commit actions that close over it, made collections a twelfth of a run's CPU."""
    tk = seq3_kernel()
    await tk.run("seq3", {"n": 0})  # the plan recorded, caches filled
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection would free is kept, to look at
    try:
        for _ in range(3):
            assert (await tk.run("seq3", {"n": 0})).status is Status.COMPLETED
        gc.collect()
        left = sorted({type(thing).__name__ for thing in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
