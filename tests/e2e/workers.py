"""Real `wfc` processes for the runtime tests: the `counted` workflow with a ledger, workers,
and reading a database from the test process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wfc.compiler import compile_path

COUNTED = Path(__file__).resolve().parent / "counted" / "counted.wf"

STAGE = '''"""Stage `{stage}`: records each execution in the ledger; one stage may be slow once.

The slow stage is held until the test releases it (`<ledger>.release`), not for a fixed
time: whatever the test does while it runs may take long on a loaded machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .._models import {cls}Output
from .._stages import {cls}Context, {cls}Stage


def record(what: str, ctx: {cls}Context) -> None:
    with Path(os.environ["COUNTED_LEDGER"]).open("a") as ledger:
        ledger.write(f"{{what}} {{ctx.run_id}} {stage} {{os.getpid()}}\\n")


def hold(release: Path) -> None:
    """Be slow: until the test writes `release`, or COUNTED_SLOW_SECONDS at most."""
    until = time.monotonic() + float(os.environ.get("COUNTED_SLOW_SECONDS", "30"))
    while time.monotonic() < until and not release.exists():
        time.sleep(0.05)


class {cls}({cls}Stage):
    def execute(self, ctx: {cls}Context) -> {cls}Output:
        record("start", ctx)
        marker = Path(os.environ["COUNTED_LEDGER"] + ".slow")
        if os.environ.get("COUNTED_SLOW_STAGE") == "{stage}" and not marker.exists():
            marker.touch()
            hold(marker.with_suffix(".release"))
        record("done", ctx)
        return {cls}Output(n=ctx.input.n + 1)
'''


def counted_package(directory: Path, *, source: Path | None = None) -> Path:
    """Compile `counted.wf` into `directory` (or `source`, a variant of it already written)
    and fill in its stages; the package path."""
    if source is None:
        source = directory / "counted.wf"
        source.write_text(COUNTED.read_text())
    result = compile_path(source)
    assert result.ok and result.out_dir is not None, result.diagnostics
    for stage in ("first", "second", "third"):
        stub = result.out_dir / "stages" / f"{stage}.py"
        stub.write_text(STAGE.format(stage=stage, cls=stage.capitalize()))
    return result.out_dir


def ledger(path: Path) -> Counter[tuple[str, str, str]]:
    """(what, run, stage) → how many times."""
    if not path.exists():
        return Counter()
    return Counter(
        (what, run, stage)
        for what, run, stage, _pid in (line.split() for line in path.read_text().splitlines())
    )


def wfc(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m wfc …` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "wfc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def start_worker(
    package: Path, env: dict[str, str], cwd: Path, log: Path, *extra: str
) -> subprocess.Popen[str]:
    """A `wfc worker` process with fast ticks, logging JSON lines to `log`."""
    with log.open("w") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wfc",
                "worker",
                "--plan",
                str(package),
                "--tick-interval",
                "0.5",
                "--heartbeat",
                "0.5",
                *extra,
            ],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal a process and wait for it; its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def environment(db_url: str, ledger_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "WFC_DATABASE_URL": db_url,
        "COUNTED_LEDGER": str(ledger_path),
        "NO_COLOR": "1",
        **extra,
    }


def free_port() -> int:
    """A TCP port free on 127.0.0.1 a moment ago, for a server a test starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
