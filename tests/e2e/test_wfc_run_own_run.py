"""`wfc run` serves the run it created and no other, and a SIGTERM leaves nothing RUNNING:
it releases its stages, names the run and exits 143."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.workers import counted_package, environment, ledger, wait_until, wfc
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.job_records import JobRecord
from wfc.runtime.records import RunRecord, Status


def _read(url: str) -> tuple[list[RunRecord], list[JobRecord]]:
    async def read() -> tuple[list[RunRecord], list[JobRecord]]:
        storage = open_storage(url)
        try:
            runs = await storage.persistence.list_runs(limit=1000)
            jobs = [job for run in runs for job in await storage.jobs.jobs_of_run(run.id)]
            return runs, jobs
        finally:
            await storage.close()

    return asyncio.run(read())


def _embedded(tmp_path: Path, **extra: str) -> tuple[str, dict[str, str]]:
    """The embedded default database's URL, and an environment that uses it."""
    url = f"sqlite+aiosqlite:///{tmp_path / '.wfc' / 'wfc.db'}"
    env = environment(url, tmp_path / "ledger", **extra)
    env.pop("WFC_DATABASE_URL")
    return url, env


def _create(package: Path, env: dict[str, str], cwd: Path, n: int) -> str:
    created = wfc(
        "runs", "create", "counted", "--plan", str(package), "--input", json.dumps({"n": n}),
        "--json", env=env, cwd=cwd,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    run_id: str = json.loads(created.stdout)["run_id"]
    return run_id


def test_wfc_run_runs_its_own_run_and_leaves_the_others_pending(tmp_path: Path) -> None:
    package = counted_package(tmp_path)
    url, env = _embedded(tmp_path)
    other = _create(package, env, tmp_path, 10)  # somebody else's, for the workers
    done = wfc("run", str(tmp_path / "counted.wf"), "--input", '{"n": 1}', env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs, _jobs = _read(url)
    status = {run.id: run.status for run in runs}
    assert status.pop(other) is Status.PENDING
    assert list(status.values()) == [Status.COMPLETED]
    assert not [key for key in ledger(tmp_path / "ledger") if key[1] == other]


def test_sigterm_to_wfc_run_releases_its_stages_and_names_the_run(tmp_path: Path) -> None:
    counted_package(tmp_path)
    url, env = _embedded(tmp_path, COUNTED_SLOW_STAGE="first")
    run = subprocess.Popen(
        [sys.executable, "-m", "wfc", "run", str(tmp_path / "counted.wf"), "--input", '{"n": 1}'],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: (tmp_path / "ledger.slow").exists(), 30, "the slow stage to start")
        run.send_signal(signal.SIGTERM)
        _out, err = run.communicate(timeout=30)  # the stage sleeps 30 s: nobody waits for it
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 143, err
    ((kept,), jobs) = _read(url)
    last = err.strip().splitlines()[-1]
    assert last.startswith("terminated: the run is kept") and kept.id in last, err
    assert f"wfc runs show {kept.id}" in last
    assert kept.status is Status.RUNNING
    assert [job.status for job in jobs] == [Status.PENDING]  # released, not left RUNNING
