"""`wfc worker --otel / --metrics-port` refuses what it cannot do with one line and exit 1,
never a traceback: the extra missing, /metrics' port taken, an exporter it has not."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.workers import counted_package, environment

WITHOUT_OTEL = (
    "import sys; sys.modules['opentelemetry'] = None; "  # as if wfc[otel] were not installed
    "from wfc.cli import main; sys.argv[0] = 'wfc'; main()"
)


def worker(
    package: Path, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL if env.pop("ABSENT", "") else
         "import sys; from wfc.cli import main; sys.argv[0] = 'wfc'; main()",
         "worker", "--plan", str(package), *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
        env=environment(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", tmp_path / "l", **env),
    )  # fmt: skip


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return counted_package(tmp_path)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]  # JSON logs
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_otel_without_the_extra_says_what_to_install(package: Path, tmp_path: Path) -> None:
    line = one_line(worker(package, tmp_path, "--otel", ABSENT="1"))
    assert line == (
        "Error: OpenTelemetry is not installed (opentelemetry is missing): pip install 'wfc[otel]'"
    )


def test_a_metrics_port_in_use_is_named(package: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = worker(package, tmp_path, "--metrics-port", str(port), "--metrics-host", "127.0.0.1")
    line = one_line(done)
    assert line.startswith(f"Error: cannot serve /metrics on 127.0.0.1:{port}: "), line


def test_an_unknown_exporter_is_named(package: Path, tmp_path: Path) -> None:
    line = one_line(worker(package, tmp_path, "--otel", OTEL_TRACES_EXPORTER="zipkin"))
    assert line == "Error: OTEL_TRACES_EXPORTER='zipkin': wfc supports otlp, console, none"


@pytest.mark.parametrize("switch", ["--otel", "WFC_OTEL"])
def test_wfc_run_with_otel_traces_its_run_and_each_stage(
    package: Path, tmp_path: Path, switch: str
) -> None:
    """`wfc run --otel` (or WFC_OTEL=1) traces the run it runs here, like a worker does;
    without the switch nothing is exported."""
    env = environment(
        f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", tmp_path / "ledger",
        OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none",
    )  # fmt: skip
    args = ["--otel"] if switch == "--otel" else []
    if switch == "WFC_OTEL":
        env["WFC_OTEL"] = "1"

    def run(*extra: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wfc", "run", str(package), "--input", '{"n": 1}', *extra],
            capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False, env=environ,
        )  # fmt: skip

    traced = run(*args, environ=env)
    assert traced.returncode == 0, traced.stderr
    names = [line.split('"')[3] for line in traced.stdout.splitlines() if '"name": "' in line]
    assert "run counted" in names
    assert {"stage first", "stage second", "stage third"} <= set(names)
    plain = run(environ={k: v for k, v in env.items() if k != "WFC_OTEL"})
    assert plain.returncode == 0, plain.stderr
    assert '"name": "stage' not in plain.stdout
