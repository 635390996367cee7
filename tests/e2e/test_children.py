"""A real `wfc worker` process runs a parent and its child run on a SQLite file.

Two packages are compiled from `counted.wf` (the second renamed `relay`), and the middle
stage of `relay` made a built-in child stage running `counted` in its plan (the
language's syntax for it comes later). One worker serving both runs `relay`: its `second`
stage starts a `counted` child run, waits for it holding no slot, and takes its output;
`wfc runs show` links the two both ways.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from tests.e2e.workers import COUNTED, counted_package, environment, start_worker, stop, wait_until
from wfc.cli import cli
from wfc.plan import CHILD_IMPLEMENTATION, ChildWorkflow, Plan
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.records import RunRecord, Status


def _relay_package(directory: Path) -> Path:
    """`counted.wf` compiled as workflow `relay`, its `second` stage running `counted`."""
    directory.mkdir()
    source = directory / "counted.wf"
    source.write_text(COUNTED.read_text().replace("workflow counted", "workflow relay"))
    package = counted_package(directory, source=source)
    plan_file = package / "plan.json"
    data = Plan.from_json(plan_file.read_text()).model_dump()
    for stage in data["stages"]:
        if stage["id"] == "second":
            stage["child"] = ChildWorkflow(workflow_id="counted")
            stage["implementation"] = CHILD_IMPLEMENTATION
    plan_file.write_text(Plan.model_validate(data).with_fingerprint().to_json())
    return package


def _runs(url: str) -> list[RunRecord]:
    async def read() -> list[RunRecord]:
        storage = open_storage(url)
        try:
            return await storage.persistence.list_runs(limit=10)
        finally:
            await storage.close()

    return asyncio.run(read())


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_a_worker_runs_a_parent_and_its_child(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    child_package = counted_package(tmp_path)
    relay = _relay_package(tmp_path / "relay")
    env = environment(db, tmp_path / "ledger")
    out = _invoke(
        "runs", "create", "relay", "--plan", str(relay), "--input", '{"n": 1}', "--json", "--db", db
    )
    run_id = json.loads(out)["run_id"]
    worker = start_worker(
        relay, env, tmp_path, tmp_path / "worker.log", "--plan", str(child_package)
    )
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
    [child] = [r for r in _runs(db) if r.id != run_id]
    assert (child.workflow_id, child.status, child.input, child.output) == (
        "counted",
        Status.COMPLETED,
        {"n": 2},
        {"n": 5},
    )
    assert (child.parent_run_id, child.parent_stage_id) == (run_id, "second")

    shown = _invoke("runs", "show", run_id, "--db", db)
    assert "child run" in shown and child.id in shown
    assert f"parent run {run_id} stage second" in _invoke("runs", "show", child.id, "--db", db)
    as_json = json.loads(_invoke("runs", "show", run_id, "--json", "--db", db))
    [second] = [s for s in as_json["stages"] if s["stage_id"] == "second"]
    assert second["child_run"] == {
        "run_id": child.id,
        "workflow_id": "counted",
        "status": "COMPLETED",
    }
    assert second["child_runs"] == [child.id] and as_json["parent_run_id"] is None
    child_json = json.loads(_invoke("runs", "show", child.id, "--json", "--db", db))
    assert (child_json["parent_run_id"], child_json["parent_stage_id"]) == (run_id, "second")
    listed = _invoke("runs", "list", "--db", db)
    assert f"↳ {run_id}" in listed
