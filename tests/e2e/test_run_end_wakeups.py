"""A run ended by another process wakes the processes waiting for it at once, not at their
next poll: `wait_for_run` without a host in this process, and `wfc runs watch` and
`wfc runs logs -f` in another, on a SQLite file (its `data_version`) and on PostgreSQL
(the `wfc_run_ended` NOTIFY that revision 0018 installs, as `wfc db upgrade` does).

Each waiter polls every minute and gives up after 20 s: returning with the run ended
proves it was woken, not polled. The run is ended by `wfc runs cancel`, a process of its
own, after the waiter has looked at the run once (it found it PENDING).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.databases import create_database, drop_database
from tests.e2e.test_runs_follow import CREATE, first_line, started
from tests.e2e.workers import environment, wfc
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.hosts import RunSnapshot, make_kernel, wait_for_run
from wfc.runtime.records import Status
from wfc.runtime.registry import WorkflowMap

SLOW = timedelta(seconds=60)  # the poll: longer than any test waits
WITHIN = timedelta(seconds=20)


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Processes sharing a database `wfc db upgrade` migrated: a SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    else:
        url = asyncio.run(create_database(empty=True))
    environ = environment(url, tmp_path / "ledger")
    try:
        migrated = wfc("db", "upgrade", env=environ, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        yield environ
    finally:
        if request.param == "postgres":
            asyncio.run(drop_database(url))


def _created(env: dict[str, str], cwd: Path) -> str:
    created = wfc(*CREATE, env=env, cwd=cwd)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


async def _wait_while_another_process_cancels(
    env: dict[str, str], cwd: Path, run_id: str
) -> RunSnapshot:
    storage = open_storage(env["WFC_DATABASE_URL"])
    kernel = make_kernel(storage, WorkflowMap())
    looked = asyncio.Event()
    try:
        waiting = asyncio.create_task(
            wait_for_run(kernel, run_id, poll_interval=SLOW, on_change=lambda _run: looked.set())
        )
        await looked.wait()  # it found the run PENDING: what ends it next is another process
        cancelled = await asyncio.to_thread(wfc, "runs", "cancel", run_id, env=env, cwd=cwd)
        assert cancelled.returncode == 0, cancelled.stderr
        # Not `wait_for_run`'s own timeout: it looks once more when it runs out.
        return await asyncio.wait_for(waiting, WITHIN.total_seconds())
    finally:
        await storage.close()


def test_wait_for_run_returns_as_another_process_ends_the_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    run_id = _created(env, tmp_path)
    run = asyncio.run(_wait_while_another_process_cancels(env, tmp_path, run_id))
    assert run.status is Status.CANCELLED


def _follow_while_another_process_cancels(
    env: dict[str, str], cwd: Path, run_id: str, command: tuple[str, ...], says: str
) -> tuple[int, str]:
    """`wfc runs <command>` polling every minute, the run cancelled by another process once
    the follower said it follows (`says`); its exit code and the rest of its stderr."""
    follower = started("runs", *command, "--interval", "60", env=env, cwd=cwd)
    try:
        assert first_line(follower).startswith(says)
        cancelled = wfc("runs", "cancel", run_id, env=env, cwd=cwd)
        assert cancelled.returncode == 0, cancelled.stderr
        _, stderr = follower.communicate(timeout=WITHIN.total_seconds())
    finally:
        follower.kill()
        follower.wait()
    return follower.returncode, stderr


def test_watch_ends_as_another_process_ends_the_run(env: dict[str, str], tmp_path: Path) -> None:
    run_id = _created(env, tmp_path)
    code, stderr = _follow_while_another_process_cancels(
        env, tmp_path, run_id, ("watch", run_id), f"watching run {run_id}"
    )
    assert code == 1, stderr
    assert f"run {run_id} cancelled" in stderr


def test_logs_follow_ends_as_another_process_ends_the_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    run_id = _created(env, tmp_path)
    code, stderr = _follow_while_another_process_cancels(
        env, tmp_path, run_id, ("logs", run_id, "-f"), f"following the logs of run {run_id}"
    )
    assert code == 0, stderr
