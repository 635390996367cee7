"""`wfc diff OLD NEW` from the shell: exit codes, the three formats, every kind of side,
and usage errors that are one line (or the compiler's diagnostics), never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tests.conftest import EXAMPLES, ROOT
from wfc.cli import cli

PIPELINE = EXAMPLES / "documents" / "pipeline.wf"


def wfc(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["diff", *map(str, args)])


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, Path]:
    """The example pipeline and a copy of it to change."""
    old = tmp_path / "v1" / "pipeline.wf"
    new = tmp_path / "v2" / "pipeline.wf"
    for target in (old, new):
        target.parent.mkdir()
        shutil.copy(PIPELINE, target)
    return old, new


def change(path: Path, before: str, after: str) -> None:
    text = path.read_text()
    assert before in text, before
    path.write_text(text.replace(before, after, 1))


def test_identical_versions_exit_0(versions: tuple[Path, Path]) -> None:
    old, new = versions
    result = wfc(old, new)
    assert result.exit_code == 0, result.output
    assert "the plans are identical" in result.stdout


def test_compatible_changes_are_listed_and_exit_0(versions: tuple[Path, Path]) -> None:
    old, new = versions
    change(new, "timeout 2m", "timeout 5m")
    change(new, "at most 8 at once", "at most 16 at once")
    result = wfc(old, new)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    timeout = next(line for line in lines if "stage-timeout-changed" in line)
    assert timeout.split()[0] == "compatible"
    assert f"{new.as_posix()}:" in timeout and "2m → 5m" in timeout
    assert "stage-map-limit-changed" in result.stdout
    assert lines[-1] == "2 changes (2 compatible): safe for every run in flight"


def test_a_breaking_change_exits_1_with_its_place_and_condition(
    versions: tuple[Path, Path],
) -> None:
    old, new = versions
    change(new, "word_count: int (>= 0)", "word_count: int (>= 1)")
    change(new, 'language: str = "en"', 'language: str = "en"\n    strict: bool')
    result = wfc(old, new)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    required = next(line for line in lines if "input-field-added-required" in line)
    assert required.split()[:2] == ["breaking", f"{new.as_posix()}:33:5"]
    narrowed = next(line for line in lines if "stage-output-type-narrowed" in line)
    assert narrowed.split()[0] == "breaking_if_started"
    assert narrowed.endswith("[runs that started extract]")
    # worst first, grouped, then the summary
    assert lines.index(required) < lines.index(narrowed)
    assert lines[-1].endswith("not safe for every run in flight")


def test_json_format(versions: tuple[Path, Path]) -> None:
    old, new = versions
    change(new, "word_count: int (>= 0)", "word_count: int (>= 1)")
    result = wfc(old, new, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["workflow_id"] == "document_processor"
    assert data["old"] == {"origin": old.as_posix(), "kind": "source"}
    assert data["compatible"] is False and data["identical"] is False
    assert data["counts"] == {"breaking": 0, "breaking_if_started": 1, "compatible": 0}
    (only,) = data["changes"]
    assert only["code"] == "stage-output-type-narrowed"
    assert only["verdict"] == "breaking_if_started"
    assert only["affects"] == ["extract"] and only["stage_id"] == "extract"
    assert only["path"] == ["stage", "extract", "output", "word_count"]
    assert only["location"]["file"] == new.as_posix() and only["location"]["line"] == 42


def test_github_format(versions: tuple[Path, Path]) -> None:
    old, new = versions
    change(new, "word_count: int (>= 0)", "word_count: int (>= 1)")
    change(new, "timeout 2m", "timeout 5m")
    result = wfc(old, new, "--format", "github")
    assert result.exit_code == 1
    error, notice = result.stdout.splitlines()
    assert error.startswith("::error title=wfc diff%3A stage-output-type-narrowed")
    assert f"file={new.as_posix()},line=42,col=" in error
    assert "%0Abreaks: runs that started extract" in error
    assert notice.startswith("::notice title=wfc diff%3A stage-timeout-changed")


def test_a_package_and_a_plan_json_are_sides(versions: tuple[Path, Path]) -> None:
    old, new = versions
    assert CliRunner().invoke(cli, ["compile", str(old)]).exit_code == 0
    package = old.parent / "document_processor"
    change(new, "word_count: int (>= 0)", "word_count: int (>= 1)")
    from_package = wfc(package, new, "--format", "json")
    from_plan = wfc(package / "plan.json", new, "--format", "json")
    assert from_package.exit_code == from_plan.exit_code == 1
    assert json.loads(from_package.stdout)["old"]["kind"] == "package"
    assert json.loads(from_plan.stdout)["old"]["kind"] == "plan"
    # the package's source beside it still compiles to the same plan: its places are known
    backwards = json.loads(wfc(new, package, "--format", "json").stdout)
    (only,) = backwards["changes"]
    assert only["location"]["file"] == old.as_posix()
    assert (
        json.loads(wfc(new, package / "plan.json", "--format", "json").stdout)["changes"][0][
            "location"
        ]["file"]
        == new.as_posix()
    )


def test_a_directory_of_workflows_needs_workflow(tmp_path: Path) -> None:
    for name in ("documents/pipeline.wf", "reviews/reviews.wf"):
        shutil.copy(EXAMPLES / name, tmp_path / Path(name).name)
    several = wfc(tmp_path, tmp_path)
    assert several.exit_code == 2
    assert "holds several workflows (document_processor, review_labels)" in several.stderr
    assert "--workflow" in several.stderr
    picked = wfc(tmp_path, tmp_path, "--workflow", "review_labels")
    assert picked.exit_code == 0, picked.output
    assert "(workflow review_labels)" in picked.stdout
    missing = wfc(tmp_path, tmp_path, "--workflow", "nope")
    assert missing.exit_code == 2 and "holds no workflow `nope`" in missing.stderr


def test_workflow_must_match_a_single_source(versions: tuple[Path, Path]) -> None:
    old, new = versions
    result = wfc(old, new, "--workflow", "invoice")
    assert result.exit_code == 2
    assert "holds workflow `document_processor`, not `invoice`" in result.stderr


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda d: d / "missing.wf", "no such file or directory", id="missing"),
        pytest.param(lambda d: _write(d / "notes.txt", "hi"), "is not a workflow source", id="txt"),
        pytest.param(lambda d: _write(d / "plan.json", "{}"), "is not a valid plan", id="bad plan"),
        pytest.param(
            lambda d: _write(d / "x.json", "not json"), "is not a valid plan", id="not json"
        ),
        pytest.param(lambda d: d / "empty", "holds no workflow source", id="empty dir"),
    ],
)
def test_usage_errors_exit_2_in_one_line(tmp_path: Path, make: object, expected: str) -> None:
    (tmp_path / "empty").mkdir()
    assert callable(make)
    side = make(tmp_path)
    result = wfc(side, PIPELINE)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_source_that_does_not_compile_shows_its_diagnostics(tmp_path: Path) -> None:
    broken = _write(
        tmp_path / "broken.wf", PIPELINE.read_text().replace("needs extract,", "needs extrct,")
    )
    result = wfc(PIPELINE, broken)
    assert result.exit_code == 2
    assert "error[WF" in result.stderr and "extrct" in result.stderr
    assert f"error: {broken.as_posix()} does not compile" in result.stderr
    github = wfc(PIPELINE, broken, "--format", "github")
    assert github.exit_code == 2 and github.stdout.startswith("::error ")


def test_the_installed_command_and_its_imports() -> None:
    """`wfc diff` loads the compiler but not the runtime nor the database stack (start-up
    stays quick), and runs as the installed program."""
    script = (
        "import sys\n"
        "from wfc.cli import cli\n"
        f"try:\n    cli(['diff', {str(PIPELINE)!r}, {str(PIPELINE)!r}])\n"
        "except SystemExit as stop:\n    print('exit', stop.code, file=sys.stderr)\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert "Traceback" not in out.stderr, out.stderr
    modules = set(out.stderr.splitlines())
    assert "exit 0" in modules
    heavy = ("wfc.runtime", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "rich", "uvloop")
    assert [m for m in modules if m.split(".")[0] in heavy or m.startswith("wfc.runtime")] == []
    assert "wfc.compiler.diff" in modules
    installed = Path(sys.executable).parent / "wfc"
    if installed.exists():
        run = subprocess.run(
            [str(installed), "diff", str(PIPELINE), str(PIPELINE)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0 and "identical" in run.stdout


def test_a_side_can_be_a_stored_plan_by_its_fingerprint(tmp_path: Path) -> None:
    """The plan runs were created with, read from the database by the fingerprint `wfc runs
    show --json` gives, against the source about to be deployed."""
    import asyncio

    from wfc.compiler import compile_path
    from wfc.plan import Plan
    from wfc.runtime.adapters.sql import migrate, open_storage
    from wfc.runtime.records import PlanRecord
    from wfc.testing import FakeClock

    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    deployed = tmp_path / "v1" / "pipeline.wf"
    deployed.parent.mkdir()
    shutil.copy(PIPELINE, deployed)
    compiled = compile_path(deployed)
    assert compiled.ok and compiled.out_dir is not None
    plan = Plan.from_json((compiled.out_dir / "plan.json").read_text())

    async def store() -> None:
        storage = open_storage(url, clock=FakeClock())
        await migrate.upgrade(storage.engine)  # as `wfc db upgrade` leaves it
        await storage.persistence.record_plans(
            [
                PlanRecord(
                    fingerprint=plan.fingerprint,
                    workflow_id=plan.workflow_id,
                    workflow_name=plan.name,
                    plan=plan.to_json(),
                    recorded_at=FakeClock().now(),
                )
            ]
        )
        await storage.close()

    asyncio.run(store())
    same = wfc(plan.fingerprint, PIPELINE, "--db", url)
    assert same.exit_code == 0, same.output
    unknown = wfc("sha256:" + "0" * 64, PIPELINE, "--db", url)
    assert unknown.exit_code == 2
    assert "no stored plan has the fingerprint sha256:000" in unknown.stderr
