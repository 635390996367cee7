"""`wfc worker --ui-port`: a real worker serving the read-only dashboard beside its work.

The dashboard runs on a thread of its own (`wfc.web.embedded`): the worker must still run
the runs, the pages must show them, an action must be refused (read-only), SIGTERM must
stop both with exit 0, and a port already taken must be a one-line error at start-up."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.workers import (
    counted_package,
    environment,
    free_port,
    start_worker,
    stop,
    wait_until,
    wfc,
)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def test_a_worker_serves_the_dashboard_of_the_runs_it_runs(tmp_path: Path) -> None:
    package = counted_package(tmp_path)
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", tmp_path / "ledger")
    port = free_port()
    worker = start_worker(
        package, env, tmp_path, tmp_path / "worker.log", "--poll-interval", "0.1",
        "--ui-port", str(port),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        created = wfc("runs", "create", "counted", "--plan", str(package), "--input",
                      '{"n": 1}', env=env, cwd=tmp_path)  # fmt: skip
        assert created.returncode == 0, created.stderr
        run_id = created.stdout.strip()
        page = wait_until(
            lambda: (p := _get(f"{base}/runs/{run_id}"))[0] == 200 and "completed" in p[1] and p,
            timeout=60,
            what="the run's page to show it completed",
        )
        assert "third" in page[1]  # its stages are drawn
        assert run_id[:8] in _get(f"{base}/runs")[1]
        cancel = urllib.request.Request(f"{base}/runs/{run_id}/cancel", method="POST", data=b"")
        try:
            urllib.request.urlopen(cancel, timeout=5)
            refused = False
        except urllib.error.HTTPError as error:
            refused = error.code in (403, 405)
        assert refused, "the embedded dashboard is read-only"
    finally:
        code = stop(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()[-2000:]
    assert _get(base)[0] == 0  # the dashboard stopped with the worker


def test_a_taken_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    package = counted_package(tmp_path)
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", tmp_path / "ledger")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wfc("worker", "--plan", str(package), "--ui-port", str(port),
                     env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert f"--ui-port {port}: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
