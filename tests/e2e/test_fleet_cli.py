"""`wfc runs migrate` and `wfc limits` as an operator types them, on the embedded SQLite
default in a temporary working directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.e2e.workers import wfc
from wfc.compiler.driver import compile_path
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.hosts import make_kernel, process_job
from wfc.runtime.registry import load_registry

FRESH = """workflow fresh {{
  description "{description}"
  input {{ n: int{extra} }}
  output {{ n: int }}
  stage only {{ input {{ n: int }} output {{ n: int }} }}
  stage after {{ input {{ n: int }} output {{ n: int }} }}
  flow only -> after
}}
"""

STAGE = (
    "from .._models import {cls}Output\nfrom .._stages import {cls}Context, {cls}Stage\n\n\n"
    "class {cls}({cls}Stage):\n"
    "    def execute(self, ctx: {cls}Context) -> {cls}Output:\n"
    "        return {cls}Output(n=ctx.input.n + 1)\n"
)


def _package(directory: Path, description: str, extra: str = "") -> Path:
    directory.mkdir()
    source = directory / "fresh.wf"
    source.write_text(FRESH.format(description=description, extra=extra))
    result = compile_path(source)
    assert result.ok and result.out_dir is not None, result.diagnostics
    for stage in ("only", "after"):
        (result.out_dir / "stages" / f"{stage}.py").write_text(STAGE.format(cls=stage.title()))
    return result.out_dir


def _run_one_job(url: str, package: Path) -> None:
    """Execute the first queued job, as a worker of `package` would."""

    async def step() -> None:
        storage = open_storage(url)
        try:
            kernel = make_kernel(storage, load_registry([package]))
            (job,) = await storage.jobs.dequeue(1)
            await process_job(kernel, job)
        finally:
            await storage.close()

    asyncio.run(step())


def test_runs_migrate_moves_what_is_safe_and_refuses_the_rest(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    env = {"WFC_DATABASE_URL": url}
    v1 = _package(tmp_path / "v1", "first")
    v2 = _package(tmp_path / "v2", "second")  # a new description: safe for every run
    v3 = _package(tmp_path / "v3", "third", extra=", currency: str")  # a new required input
    created = wfc(
        "runs", "create", "fresh", "--plan", str(v1), "--input", '{"n": 1}', "--json",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    run_id = json.loads(created.stdout)["run_id"]
    refused = wfc("runs", "migrate", run_id, "--to", str(v3), env=env, cwd=tmp_path)
    assert refused.returncode == 0, refused.stderr  # nothing started: any change is safe
    moved_back = wfc("runs", "migrate", run_id, "--to", str(v1), env=env, cwd=tmp_path)
    assert moved_back.returncode == 0 and f"migrated {run_id}" in moved_back.stdout
    ran = wfc("maintenance", "tick", "--plan", str(v1), env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr  # claims the run
    _run_one_job(url, v1)  # `only` ran: its output was made for v1's input
    shown = json.loads(wfc("runs", "show", run_id, "--json", env=env, cwd=tmp_path).stdout)
    assert shown["status"] == "RUNNING"
    breaking = wfc("runs", "migrate", "--all", "--to", str(v3), "--json", env=env, cwd=tmp_path)
    assert breaking.returncode == 1
    (result,) = json.loads(breaking.stdout)
    assert result["status"] == "refused" and "--from" in result["reason"]
    safe = wfc("runs", "migrate", "--all", "--to", str(v2), env=env, cwd=tmp_path)
    assert safe.returncode == 0 and f"migrated {run_id} to sha256:" in safe.stdout
    after = json.loads(wfc("runs", "show", run_id, "--json", env=env, cwd=tmp_path).stdout)
    assert after["plan_fingerprint"] != shown["plan_fingerprint"]
    nothing = wfc("runs", "migrate", "--all", "--to", str(v2), env=env, cwd=tmp_path)
    assert nothing.returncode == 0 and "no unfinished run of fresh" in nothing.stdout
    both = wfc("runs", "migrate", run_id, "--all", "--to", str(v2), env=env, cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr
    unknown = wfc("runs", "migrate", "nope", "--to", str(v2), env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "no run starts with 'nope'" in unknown.stderr


def test_limits_set_list_and_reset_from_the_shell(tmp_path: Path) -> None:
    env = {"WFC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"}
    assert wfc("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    empty = wfc("limits", "list", env=env, cwd=tmp_path)
    assert "no limited job" in empty.stdout
    assert wfc("limits", "set", "rate:openai", "20", env=env, cwd=tmp_path).returncode == 0
    listed = json.loads(wfc("limits", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert listed == [
        {
            "key": "rate:openai",
            "kind": "rate",
            "in_use": None,
            "plan_bound": None,
            "bound": 20,
            "bound_from": "operator",
        }
    ]
    bad = wfc("limits", "set", "openai", "20", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "not a limit key" in bad.stderr
    zero = wfc("limits", "set", "rate:openai", "0", env=env, cwd=tmp_path)
    assert zero.returncode == 2 and "Traceback" not in zero.stderr
    assert wfc("limits", "reset", "rate:openai", env=env, cwd=tmp_path).returncode == 0
    assert json.loads(wfc("limits", "list", "--json", env=env, cwd=tmp_path).stdout) == []
