"""Workers on a SQLite file notice runs created by another process without waiting for a
poll (`PRAGMA data_version`), and one of them at a time leads claims (a `flock`)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.databases import open_storage
from tests.kernel.conftest import Script, Words, build_workflows
from wfc.runtime import RunCreate, Status, WorkerHost
from wfc.runtime.adapters.sql import sqlite_wakeups
from wfc.runtime.adapters.sql.sqlite_wakeups import (
    WAKE_GAP,
    NewRunWaiting,
    SqliteWakeups,
    WakeRule,
)
from wfc.runtime.adapters.sql.sqlite_writes import WRITES
from wfc.runtime.hosts import make_kernel, wait_for_run
from wfc.runtime.registry import WorkflowMap

DOC = {"text": "the quick brown fox"}
SLOW = timedelta(seconds=60)  # no poll or tick comes during a test: only wakeups move runs


async def test_a_run_created_by_another_process_starts_without_a_poll(
    script: Script, tmp_path: Path
) -> None:
    """The worker polls once a minute; a run created through another engine on the same
    file (another process, as far as SQLite knows) still finishes within seconds."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    registry = WorkflowMap(build_workflows(script))
    ours, theirs = open_storage(url), open_storage(url)
    await ours.create_schema()
    assert isinstance(ours.wakeups, SqliteWakeups)
    worker = WorkerHost(
        make_kernel(ours, registry),
        orchestration_interval=SLOW,
        job_poll_interval=SLOW,
        shutdown_grace=timedelta(seconds=5),
        wakeups=ours.wakeups,
    )
    creator = make_kernel(theirs, registry)
    try:
        await worker.start()
        for _ in range(500):  # its first tick has passed and it listens
            if worker.stats().orchestration_ticks and worker.orchestrator.listening is not None:
                break
            await asyncio.sleep(0.01)
        for n in range(3):
            began = time.monotonic()
            created = await creator.dispatch(
                RunCreate(idempotency_key=f"k{n}", workflow_id="linear", input=DOC)
            )
            run = await wait_for_run(creator, created.workflow_run_id, timeout=SLOW / 4)
            assert run.status is Status.COMPLETED
            assert time.monotonic() - began < 10
    finally:
        await worker.stop()
        await ours.close()
        await theirs.close()


async def test_one_listener_leads_claims_at_a_time(tmp_path: Path) -> None:
    """The lead is an exclusive lock on a file beside the database: a second listener cannot
    take it while the first holds it, and takes it once the first passes it on."""
    (tmp_path / "wfc.db").touch()
    wakeups = SqliteWakeups(tmp_path / "wfc.db")
    woken: list[str] = []
    async with wakeups.listen(woken.append) as first, wakeups.listen(woken.append) as second:
        assert await first.lead_claims()
        assert not await second.lead_claims()
        assert first.leading and not second.leading
        await first.pass_on_claims()
        assert not first.leading
        assert await second.lead_claims()
        assert not await first.lead_claims()
    async with wakeups.listen(woken.append) as third:  # the others closed: the lead is free
        assert await third.lead_claims()


# -- what a look wakes (`WakeRule`) ---------------------------------------------------------

GAP = WAKE_GAP


class Asked:
    """`run_waiting` for the rule: answers `waiting`, and counts the questions."""

    def __init__(self, waiting: bool) -> None:
        self.waiting = waiting
        self.times = 0

    def __call__(self) -> bool:
        self.times += 1
        return self.waiting


def test_a_change_no_write_of_this_process_made_wakes_both_at_once() -> None:
    rule = WakeRule(version=1, own_writes=10)
    assert rule.look(2, 10, 100.0, Asked(False)) == ("runs", "jobs")
    # Again right after: another process's change is never held back by the gap.
    assert rule.look(3, 10, 100.0 + GAP / 5, Asked(False)) == ("runs", "jobs")


def test_a_change_that_may_be_this_process_s_own_waits_for_the_gap() -> None:
    rule = WakeRule(version=1, own_writes=10)
    assert rule.look(2, 11, 100.0, Asked(False)) == ("runs", "jobs")  # first: at once
    asked = Asked(False)
    assert rule.look(3, 12, 100.0 + GAP / 5, asked) == ()
    assert asked.times == 1
    # No change since, but the change held back is woken for once the gap has passed.
    assert rule.look(3, 12, 100.0 + GAP / 2, asked) == ()
    assert rule.look(3, 12, 100.0 + GAP * 1.01, asked) == ("runs", "jobs")
    assert rule.look(3, 12, 100.0 + 3 * GAP, asked) == ()  # nothing left to wake for
    assert asked.times == 1  # asked only when a change was held back


def test_a_pending_run_is_claimed_within_the_gap_and_jobs_still_wait_for_it() -> None:
    rule = WakeRule(version=1, own_writes=10)
    assert rule.look(2, 11, 100.0, Asked(True)) == ("runs", "jobs")
    assert rule.look(3, 12, 100.0 + GAP / 5, Asked(True)) == ("runs-pending",)
    assert rule.look(3, 12, 100.0 + GAP * 1.01, Asked(True)) == ("runs", "jobs")


def test_a_version_sqlite_could_not_read_is_a_change_that_may_be_this_process_s() -> None:
    """It wakes, but never more often than the gap allows: a watcher that fails at every
    look does not wake an idle worker every look."""
    rule = WakeRule(version=1, own_writes=10)
    assert rule.look(None, 10, 100.0, Asked(False)) == ("runs", "jobs")
    assert rule.look(None, 10, 100.0 + GAP / 5, Asked(False)) == ()
    assert rule.look(None, 10, 100.0 + GAP * 1.01, Asked(False)) == ("runs", "jobs")


def test_no_change_wakes_nothing_and_asks_nothing() -> None:
    rule = WakeRule(version=1, own_writes=10)
    asked = Asked(True)
    assert rule.look(1, 10, 100.0, asked) == ()
    assert rule.look(1, 15, 101.0, asked) == ()  # own writes that changed nothing seen
    assert asked.times == 0


async def test_a_write_of_this_process_is_counted_and_a_new_pending_run_is_seen(
    tmp_path: Path,
) -> None:
    """What the rule reads, on a real file: each write transaction of this process ends
    a turn (`WRITES.ended`); `NewRunWaiting` says yes once for a run created since it was
    last asked while a run is PENDING, no for a run claimed meanwhile, and no on a file
    without the tables (the gap's wake comes anyway)."""
    path = tmp_path / "wfc.db"
    storage = open_storage(f"sqlite+aiosqlite:///{path}")
    await storage.create_schema()
    kernel = make_kernel(storage, WorkflowMap(build_workflows(Script())))
    watcher = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    new_run_waiting = NewRunWaiting(watcher)
    try:
        assert not new_run_waiting()
        before = WRITES.ended
        first = await kernel.dispatch(
            RunCreate(idempotency_key="a", workflow_id="linear", input=DOC)
        )
        assert WRITES.ended > before
        assert new_run_waiting()
        assert not new_run_waiting()  # still PENDING, but not new: no claim per look for it
        second = await kernel.dispatch(
            RunCreate(idempotency_key="b", workflow_id="linear", input=DOC)
        )
        for created in (first, second):
            await storage.persistence.claim_next_pending_run(run_id=created.workflow_run_id)
        assert not new_run_waiting()  # new, but claimed already
    finally:
        watcher.close()
        await storage.close()
    (tmp_path / "empty.db").touch()
    empty = sqlite3.connect(f"file:{tmp_path / 'empty.db'}?mode=ro", uri=True)
    try:
        assert not NewRunWaiting(empty)()
    finally:
        empty.close()


async def test_the_watcher_sends_runs_pending_for_a_run_created_within_the_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`listen` wired to the rule: after a wake, a run this process creates (its own
    write: a change that may be the worker's) is told as `runs-pending` at the next look,
    not at the gap's end (made an hour here, so only the rule's early wake can come)."""
    monkeypatch.setattr(sqlite_wakeups, "WAKE_GAP", 3600.0)
    path = tmp_path / "wfc.db"
    storage = open_storage(f"sqlite+aiosqlite:///{path}")
    await storage.create_schema()
    kernel = make_kernel(storage, WorkflowMap(build_workflows(Script())))
    woken: list[str] = []
    try:
        async with SqliteWakeups(path).listen(woken.append):
            await asyncio.sleep(0.1)  # the watcher has looked once
            await kernel.dispatch(RunCreate(idempotency_key="a", workflow_id="linear", input=DOC))
            for _ in range(500):
                if woken:
                    break
                await asyncio.sleep(0.01)
            first = list(woken)
            await kernel.dispatch(RunCreate(idempotency_key="b", workflow_id="linear", input=DOC))
            for _ in range(500):
                if len(woken) > len(first):
                    break
                await asyncio.sleep(0.01)
    finally:
        await storage.close()
    assert first == ["runs", "jobs"]  # the first change after a quiet spell: at once
    assert woken[len(first) :] == ["runs-pending"]


async def test_runs_pending_wakes_the_claims_of_a_worker_with_no_busy_slot_only(
    script: Script, tmp_path: Path
) -> None:
    """`runs-pending` (a run is PENDING, and the change may have been the worker's own)
    claims at once for a worker none of whose slots is busy, and a busy worker ignores it
    (the watcher wakes it fully once its gap has passed)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    registry = WorkflowMap(build_workflows(script))
    ours, theirs = open_storage(url), open_storage(url)
    await ours.create_schema()
    release = threading.Event()
    script.then("split", lambda ctx: Words(words=["held"]) if release.wait(10) else None)
    worker = WorkerHost(
        make_kernel(ours, registry),
        concurrency=2,  # a slot stays free while the other is busy
        orchestration_interval=SLOW,
        job_poll_interval=SLOW,
        shutdown_grace=timedelta(seconds=5),
    )
    creator = make_kernel(theirs, registry)
    try:
        await worker.start()
        for _ in range(500):  # its first tick has passed: only wakes claim from here on
            if worker.stats().orchestration_ticks:
                break
            await asyncio.sleep(0.01)
        first = await creator.dispatch(
            RunCreate(idempotency_key="a", workflow_id="linear", input=DOC)
        )
        worker.orchestrator._on_wake("runs-pending")  # no slot busy: claimed now
        for _ in range(500):
            if script.calls["split"]:
                break
            await asyncio.sleep(0.01)
        assert script.calls["split"] == 1
        second = await creator.dispatch(
            RunCreate(idempotency_key="b", workflow_id="linear", input=DOC)
        )
        worker.orchestrator._on_wake("runs-pending")  # a slot is busy: left to the outcome
        await asyncio.sleep(0.5)
        waiting = await theirs.persistence.get_run(second.workflow_run_id)
        assert waiting is not None and waiting.status is Status.PENDING
        release.set()
        run = await wait_for_run(creator, first.workflow_run_id, timeout=SLOW / 6)
        assert run.status is Status.COMPLETED
        worker.orchestrator._on_wake("runs-pending")  # no slot busy again
        run = await wait_for_run(creator, second.workflow_run_id, timeout=SLOW / 6)
        assert run.status is Status.COMPLETED
    finally:
        release.set()
        await worker.stop()
        await ours.close()
        await theirs.close()
