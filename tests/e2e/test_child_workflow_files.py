"""The `.wf` syntax for child stages, end to end: `relay.wf` imports `counted.wf` and its
`second` stage is `stage second runs counted { … }`. Both files are compiled with
`wfc compile` (each to its own package), one real `wfc worker` serves both packages on a
SQLite file, and a `relay` run completes with the child's output in the middle."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.e2e.test_children import _runs
from tests.e2e.workers import COUNTED, STAGE, environment, start_worker, stop, wait_until
from wfc.cli import cli
from wfc.compiler import compile_path
from wfc.runtime.records import Status

RELAY = """import "counted.wf"

workflow relay {
  input { n: int }
  output { n: int }

  stage first  { input { n: int } output { n: int } }
  stage second runs counted { retry 2 times }
  stage third  { input { n: int } output { n: int } }

  flow first -> second -> third
}
"""


def _compile(source: Path, stages: tuple[str, ...]) -> Path:
    result = compile_path(source)
    assert result.ok and result.out_dir is not None, result.diagnostics
    for stage in stages:
        stub = result.out_dir / "stages" / f"{stage}.py"
        stub.write_text(STAGE.format(stage=stage, cls=stage.capitalize()))
    return result.out_dir


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_child_stage_written_in_wf_runs_under_a_worker(tmp_path: Path) -> None:
    (tmp_path / "counted.wf").write_text(COUNTED.read_text())
    (tmp_path / "relay.wf").write_text(RELAY)
    child = _compile(tmp_path / "counted.wf", ("first", "second", "third"))
    parent = _compile(tmp_path / "relay.wf", ("first", "third"))
    assert not (parent / "stages" / "second.py").exists()  # built in: no stub
    db = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    env = environment(db, tmp_path / "ledger")
    out = _invoke(
        "runs",
        "create",
        "relay",
        "--plan",
        str(parent),
        "--input",
        '{"n": 1}',
        "--json",
        "--db",
        db,
    )
    run_id = json.loads(out)["run_id"]
    worker = start_worker(parent, env, tmp_path, tmp_path / "worker.log", "--plan", str(child))
    try:
        done = wait_until(
            lambda: next(
                (r for r in _runs(db) if r.id == run_id and r.status is Status.COMPLETED), None
            ),
            30,
            "the parent run to finish",
        )
    finally:
        stop(worker)
    assert done.output == {"n": 6}  # first 2, the child's three stages 5, third 6
    [child_run] = [r for r in _runs(db) if r.id != run_id]
    assert (child_run.workflow_id, child_run.output) == ("counted", {"n": 5})
    assert (child_run.parent_run_id, child_run.parent_stage_id) == (run_id, "second")
    shown = _invoke("runs", "show", run_id, "--db", db)
    assert child_run.id in shown
    assert f"parent run {run_id} stage second" in _invoke("runs", "show", child_run.id, "--db", db)
