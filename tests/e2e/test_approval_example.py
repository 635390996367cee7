"""`examples/approval` as a person would run it: compiled from its `.wf`, a real `wfc worker`,
the CLI in other processes.

The example's `wait for approve` stage is written in the language, so this is the
whole path: `wfc compile` makes a package whose plan waits for the signal (with
no stub for the wait), the worker drafts the post, `wfc runs show` says the run
waits for `approve`, a payload missing a field is refused with exit 2 naming it,
and the signal sent with `wfc runs signal` lets the worker publish.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.e2e.workers import environment, start_worker, stop, wait_until, wfc


def test_the_approval_example_waits_for_its_signal(tmp_path: Path) -> None:
    work = tmp_path / "approval"
    work.mkdir()
    shutil.copy(EXAMPLES / "approval" / "approval.wf", work / "approval.wf")
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", tmp_path / "ledger")
    compiled = wfc("compile", "approval.wf", env=env, cwd=work)
    assert compiled.returncode == 0, compiled.stderr
    package = work / "approval"
    assert sorted(p.name for p in (package / "stages").glob("*.py")) == [
        "__init__.py",
        "draft.py",
        "publish.py",
    ]
    for stub in ("draft.py", "publish.py"):  # the example's own stage code
        shutil.copy(EXAMPLES / "approval" / "approval" / "stages" / stub, package / "stages")

    created = wfc(
        "runs",
        "create",
        "approval",
        "--plan",
        str(package),
        "--input",
        '{"title": "Hello, World!", "text": "First post."}',
        "--json",
        env=env,
        cwd=work,
    )
    assert created.returncode == 0, created.stderr
    run_id = json.loads(created.stdout)["run_id"]
    worker = start_worker(package, env, work, tmp_path / "worker.log")
    try:

        def waiting() -> bool:
            shown = wfc("runs", "show", run_id, env=env, cwd=work)
            return "approval waits for signal approve (since" in shown.stdout

        wait_until(waiting, 30, "the run to wait for the editor")

        refused = wfc(
            "runs",
            "signal",
            run_id,
            "approve",
            "--payload",
            '{"approved": true}',
            env=env,
            cwd=work,
        )
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert "  - by: required" in refused.stderr

        sent = wfc(
            "runs",
            "signal",
            run_id,
            "approve",
            "--payload",
            '{"approved": true, "by": "ana"}',
            env=env,
            cwd=work,
        )
        assert sent.returncode == 0, sent.stderr
        assert f"delivered to stage approval of run {run_id}" in sent.stdout

        def finished() -> dict[str, object] | None:
            shown = wfc("runs", "show", run_id, "--json", env=env, cwd=work)
            data = json.loads(shown.stdout) if shown.returncode == 0 else {}
            return data if data.get("status") == "COMPLETED" else None

        done = wait_until(finished, 30, "the run to be published")
    finally:
        stop(worker)
    assert done["output"] == {
        "published": True,
        "url": "https://blog.example.com/hello-world",
        "note": "approved by ana",
    }


def test_wfc_run_of_the_example_finishes_when_the_editor_answers(tmp_path: Path) -> None:
    """The README's way: `wfc run` in one terminal waits; `wfc runs signal` from another
    (same embedded database) lets it finish, printing the output."""
    example = tmp_path / "example"
    shutil.copytree(EXAMPLES / "approval", example)
    env = {**environment("", tmp_path / "ledger")}
    env.pop("WFC_DATABASE_URL")  # the embedded `.wfc/wfc.db` of the working directory
    running = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wfc",
            "run",
            str(example / "approval.wf"),
            "--input",
            '{"title": "Hello, World!", "text": "First post."}',
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def waiting_run() -> str | None:
            listed = wfc("runs", "list", "--status", "running", "--json", env=env, cwd=tmp_path)
            runs = json.loads(listed.stdout) if listed.returncode == 0 else []
            if not runs:
                return None
            shown = wfc("runs", "show", runs[0]["run_id"], env=env, cwd=tmp_path)
            return str(runs[0]["run_id"]) if "waits for signal approve" in shown.stdout else None

        run_id = wait_until(waiting_run, 60, "`wfc run` to wait for the editor")
        payload = '{"approved": false, "by": "ana", "note": "too short"}'
        sent = wfc("runs", "signal", run_id, "approve", "--payload", payload, env=env, cwd=tmp_path)
        assert sent.returncode == 0, sent.stderr
        out, err = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            stop(running)
    assert running.returncode == 0, err
    assert json.loads(out) == {"published": False, "url": None, "note": "refused by ana: too short"}
