"""`wfc --help` and `wfc check` stay quick to start: they never import the database stack.

Each case runs in a fresh interpreter, since this one has imported everything
already, and asserts on `sys.modules`, never on time (`benchmarks/cli_startup.py`
measures that).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "examples" / "documents" / "pipeline.wf"
DATABASE_STACK = ("sqlalchemy", "alembic", "asyncpg", "aiosqlite")
GENERATOR = ("jinja2", "wfc.compiler.codegen", "wfc.compiler.lower")


def modules_after(*args: str) -> set[str]:
    """The modules a fresh interpreter holds after running `wfc ARGS` in process."""
    script = (
        "import sys\n"
        "from wfc.cli import cli\n"
        f"try:\n    cli({list(args)!r})\n"
        "except SystemExit:\n    pass\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert "Traceback" not in out.stderr, out.stderr
    return set(out.stderr.splitlines())


def loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """Which of `packages` (or their submodules) are among `modules`."""
    return sorted(p for p in packages if any(m == p or m.startswith(p + ".") for m in modules))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="import only"),
        pytest.param(("--help",), id="wfc --help"),
        pytest.param(("runs", "--help"), id="wfc runs --help"),
        pytest.param(("worker", "--help"), id="wfc worker --help"),
        pytest.param(("check", str(PIPELINE)), id="wfc check"),
        pytest.param(("compile", "--check", str(PIPELINE)), id="wfc compile --check"),
    ],
)
def test_light_commands_do_not_import_the_database_stack(args: tuple[str, ...]) -> None:
    modules = modules_after(*args)
    assert "wfc.cli" in modules
    assert loaded(modules, DATABASE_STACK) == []


def test_help_imports_neither_the_compiler_nor_the_runtime() -> None:
    modules = modules_after("--help")
    assert loaded(modules, ("wfc.compiler", "wfc.runtime", "pydantic", "rich", "uvloop")) == []


def test_check_imports_the_compiler_only() -> None:
    modules = modules_after("check", str(PIPELINE))
    assert loaded(modules, ("wfc.compiler",)) == ["wfc.compiler"]
    assert loaded(modules, ("wfc.runtime", "rich", "uvloop")) == []
    assert loaded(modules, GENERATOR) == list(GENERATOR)  # its package is there to compare


def test_check_of_a_workflow_without_its_package_loads_no_code_generator(tmp_path: Path) -> None:
    """A new workflow has no generated package to compare with: checking it needs neither
    the lowering to a plan nor the templates, and so not Jinja (about 30 ms of its start)."""
    source = tmp_path / PIPELINE.name
    source.write_text(PIPELINE.read_text(encoding="utf-8"), encoding="utf-8")
    modules = modules_after("check", str(source))
    assert "wfc.compiler.checks" in modules
    assert loaded(modules, GENERATOR) == []


def test_the_cli_copies_of_runtime_values_match_the_runtime() -> None:
    """The CLI keeps two runtime values for its options, so `--help` needs no runtime."""
    from wfc.cli.runs_commands import IDEMPOTENCY_KEY_MAX, PRIORITY, RUN_STATUSES
    from wfc.cli.session import DEFAULT_STAGE_TIMEOUT_SECONDS
    from wfc.runtime import commands
    from wfc.runtime.hosts.wiring import DEFAULT_STAGE_TIMEOUT
    from wfc.runtime.records import Status

    assert tuple(s.value for s in Status) == RUN_STATUSES
    assert DEFAULT_STAGE_TIMEOUT.total_seconds() == DEFAULT_STAGE_TIMEOUT_SECONDS
    assert (PRIORITY.min, PRIORITY.max) == (commands.PRIORITY_MIN, commands.PRIORITY_MAX)
    from wfc.cli.project import DEFAULT_DATABASE_PATH
    from wfc.runtime.adapters.sql.engine import DEFAULT_SQLITE_PATH

    assert DEFAULT_DATABASE_PATH == DEFAULT_SQLITE_PATH
    assert IDEMPOTENCY_KEY_MAX == commands.IDEMPOTENCY_KEY_MAX
