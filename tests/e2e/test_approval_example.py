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
