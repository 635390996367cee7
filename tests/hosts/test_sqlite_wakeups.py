"""Workers on a SQLite file notice runs created by another process without waiting for a
poll (`PRAGMA data_version`), and one of them at a time leads claims (a `flock`)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from tests.databases import open_storage
from tests.kernel.conftest import Script, build_workflows
from wfc.runtime import RunCreate, Status, WorkerHost
from wfc.runtime.adapters.sql.sqlite_wakeups import SqliteWakeups
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
