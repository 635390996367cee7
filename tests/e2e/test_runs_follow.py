"""`wfc runs watch` and `wfc runs logs -f` following a run another process drives, and run
ids typed as unique prefixes by every command that takes one.

The watchers are real `wfc` processes started while the run is PENDING (each says so on
its first stderr line, which the test reads before anything moves the run), and the run
is then moved by other processes: a `wfc worker` on PostgreSQL, or `wfc runs cancel`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import EXAMPLES
from tests.databases import create_database, drop_database
from tests.e2e.workers import environment, start_worker, stop, wfc
from wfc.cli import cli
from wfc.runtime.adapters.sql import open_storage

PACKAGE = EXAMPLES / "documents" / "document_processor"
DOC = '{"document": "Great product. Fast delivery, kind support."}'
CREATE = ("runs", "create", "document_processor", "--plan", str(PACKAGE), "--input", DOC)


@pytest.fixture
def pg_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of processes sharing a fresh PostgreSQL database `wfc db upgrade`
    migrated."""
    url = asyncio.run(create_database(empty=True))
    env = environment(url, tmp_path / "ledger")
    try:
        migrated = wfc("db", "upgrade", "--url", url, env=env, cwd=tmp_path)
        assert migrated.returncode == 0, migrated.stderr
        yield env
    finally:
        asyncio.run(drop_database(url))


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", tmp_path / "ledger")
    assert wfc("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    return env


def started(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """A `wfc` process left running, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "wfc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def first_line(process: subprocess.Popen[str]) -> str:
    """The first line the process wrote on stderr (it blocks until there is one)."""
    assert process.stderr is not None
    return process.stderr.readline()


def test_watch_and_logs_follow_a_run_a_worker_runs(pg_env: dict[str, str], tmp_path: Path) -> None:
    created = wfc(*CREATE, env=pg_env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    run_id = created.stdout.strip()
    watch = started("runs", "watch", run_id[:8], "--interval", "0.1", env=pg_env, cwd=tmp_path)
    logs = started(
        "runs", "logs", run_id[:8], "-f", "--json", "--interval", "0.1", env=pg_env, cwd=tmp_path
    )
    # Both read the run PENDING, before any worker exists: what they print next is live.
    assert first_line(watch).startswith(f"watching run {run_id} document_processor (pending)")
    assert first_line(logs) == f"following the logs of run {run_id} (pending)\n"
    worker = start_worker(PACKAGE, pg_env, tmp_path, tmp_path / "worker.log")
    try:
        watched_out, watched_err = watch.communicate(timeout=120)
        logs_out, _ = logs.communicate(timeout=60)
    finally:
        stop(worker)
    assert watch.returncode == 0, watched_err
    assert "▶ extract started" in watched_err and "✔ summarize completed" in watched_err
    assert f"✔ run {run_id} completed" in watched_err
    assert json.loads(watched_out)["sentiment"] == "positive"  # the output, as `wfc run`
    assert logs.returncode == 0
    lines = [json.loads(line) for line in logs_out.splitlines()]
    extracted = [line for line in lines if line["message"] == "extracted text"]
    assert extracted and extracted[0]["stage_id"] == "extract"
    assert extracted[0]["fields"] == {"sentences": 2, "chunks": 1}
    text = wfc("runs", "logs", run_id[:8], "--stage", "extract", env=pg_env, cwd=tmp_path)
    assert text.returncode == 0 and "extract INFO extracted text " in text.stdout
    assert "sentences=2" in text.stdout  # the fields, as key=value


def test_watch_ends_with_the_run_s_status_and_ctrl_c_leaves_the_run_alone(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    run_id = wfc(*CREATE, env=env, cwd=tmp_path).stdout.strip()
    interrupted = started("runs", "watch", run_id, "--interval", "0.1", env=env, cwd=tmp_path)
    assert "(pending)" in first_line(interrupted)
    interrupted.send_signal(signal.SIGINT)
    _, stderr = interrupted.communicate(timeout=30)
    assert interrupted.returncode == 130 and "the run is left as it was" in stderr
    assert "Traceback" not in stderr
    shown = json.loads(wfc("runs", "show", run_id, "--json", env=env, cwd=tmp_path).stdout)
    assert shown["status"] == "PENDING"
    watch = started("runs", "watch", run_id[:6], "--interval", "0.1", env=env, cwd=tmp_path)
    assert "(pending)" in first_line(watch)
    cancelled = wfc("runs", "cancel", run_id[:6], env=env, cwd=tmp_path)
    assert cancelled.returncode == 0 and f"cancelled {run_id}" in cancelled.stdout
    _, stderr = watch.communicate(timeout=60)
    assert watch.returncode == 1, stderr
    assert "■ run cancelled" in stderr and f"run {run_id} cancelled" in stderr


# -- run ids by prefix -------------------------------------------------------------------


def invoke(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def refused(result: Result, code: int, says: str) -> None:
    """Exit `code` with one `Error:` line holding `says`, and no traceback."""
    assert result.exit_code == code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0], result.output
    assert "Traceback" not in result.output


def _twins(url: str, run_id: str) -> None:
    """Two more runs, copies of `run_id`, whose ids share the prefix `abcd`."""

    async def add() -> None:
        storage = open_storage(url)
        try:
            run = await storage.persistence.get_run(run_id)
            assert run is not None
            for twin in ("abcd-1", "abcd-2"):
                await storage.persistence.create_run(replace(run, id=twin))
        finally:
            await storage.close()

    asyncio.run(add())


def test_every_command_takes_a_unique_prefix_and_refuses_others(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    run_id = wfc(*CREATE, env=env, cwd=tmp_path).stdout.strip()
    _twins(env["WFC_DATABASE_URL"], run_id)
    prefix = run_id[:5]
    shown = invoke("runs", "show", prefix, "--json", env=env)
    assert shown.exit_code == 0 and json.loads(shown.output)["run_id"] == run_id
    assert invoke("runs", "logs", prefix, env=env).exit_code == 0  # pending: no lines yet
    text = invoke("runs", "show", prefix, env=env).output
    assert f"run {run_id}  document_processor  PENDING" in text and "\ncreated 20" in text
    listed = invoke("runs", "list", env=env).output
    assert "cost" in listed and "$0.0000" in listed  # a column of its own
    signal_result = invoke("runs", "signal", prefix, "approve", env=env)
    refused(signal_result, 1, "approve")  # resolved, then refused for the signal itself
    assert invoke("runs", "cancel", prefix, env=env).output == f"cancelled {run_id}\n"
    rerun = invoke("runs", "rerun", prefix, "--from", "extract", "--plan", str(PACKAGE), env=env)
    refused(rerun, 1, f"Cannot rerun run {run_id}: it is CANCELLED")  # the prefix resolved
    for name, *rest in (
        ("show",),
        ("cancel",),
        ("logs",),
        ("watch",),
        ("signal", "approve"),
        ("rerun", "--from", "extract", "--plan", str(PACKAGE)),
        ("migrate", "--to", str(PACKAGE)),
    ):
        ambiguous = invoke("runs", name, "abcd", *rest, env=env)
        refused(ambiguous, 2, "2 runs start with 'abcd' (abcd-2, abcd-1): type more of the id")
        refused(invoke("runs", name, "zzzz", *rest, env=env), 1, "no run starts with 'zzzz'")
        refused(invoke("runs", name, "ab", *rest, env=env), 2, "at least 4 characters")
    exact = invoke("runs", "show", "abcd-1", "--json", env=env)  # an exact id always names one
    assert exact.exit_code == 0 and json.loads(exact.output)["run_id"] == "abcd-1"
