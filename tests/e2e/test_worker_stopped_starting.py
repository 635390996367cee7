"""A `wfc worker` stopped while it starts (loading its plans) exits cleanly, with 0.

A supervisor may stop a worker it has just started; before the host served, the
SIGTERM took its default action and the process died with -15, a crash to anyone
watching exit codes (and to the fault tests, whose runs now finish quickly enough
to stop a worker still starting)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.workers import counted_package, start_worker


def test_a_worker_stopped_while_it_loads_its_plans_exits_0(tmp_path: Path) -> None:
    package = counted_package(tmp_path)
    stage = package / "stages" / "first.py"
    # The signal arrives while the worker imports its stages: deterministic, unlike a
    # signal sent from outside at some moment of its start.
    stage.write_text(stage.read_text() + '\nos.kill(os.getpid(), __import__("signal").SIGTERM)\n')
    log = tmp_path / "worker.log"
    env = dict(os.environ)
    worker = start_worker(
        package, env, tmp_path, log, "--db", f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    )
    assert worker.wait(120) == 0, log.read_text()
    assert '"serving"' not in log.read_text()  # it stopped before taking any work
