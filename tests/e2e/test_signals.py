"""`wfc runs signal` resumes a run a real `wfc worker` process holds no slot for.

The `counted` workflow is compiled, and its middle stage made a built-in wait
for the signal `go` in its plan, by hand (`test_approval_example` runs one
written in the language). A
worker runs the first stage on a SQLite file; the run then waits, shown as such
by `wfc runs show`. A payload that does not fit is refused (exit 2, fields
named); the signal sent from another process completes the stage and queues
the last one, which the worker runs. A finished or unknown run is a one-line
error.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from tests.e2e.workers import counted_package, environment, start_worker, stop, wait_until, wfc
from wfc.cli import cli
from wfc.plan import SIGNAL_IMPLEMENTATION, Plan, SignalSpec, SignalWait
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.records import RunRecord, Status

GO = SignalSpec(
    name="go",
    payload_schema={
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    },
)


def _wait_for_go(package: Path) -> None:
    plan_file = package / "plan.json"
    data = Plan.from_json(plan_file.read_text()).model_dump()
    data["signals"] = [GO.model_dump()]
    for stage in data["stages"]:
        if stage["id"] == "second":
            stage["wait_for"] = SignalWait(signal="go", timeout_ms=600_000)
            stage["implementation"] = SIGNAL_IMPLEMENTATION
    plan_file.write_text(Plan.model_validate(data).with_fingerprint().to_json())


def _run(url: str, run_id: str) -> RunRecord | None:
    async def read() -> RunRecord | None:
        storage = open_storage(url)
        try:
            return await storage.persistence.get_run(run_id)
        finally:
            await storage.close()

    return asyncio.run(read())


def _suspended(url: str, run_id: str, stage_id: str) -> bool:
    async def read() -> bool:
        storage = open_storage(url)
        try:
            row = await storage.persistence.get_stage(run_id, stage_id)
            return row is not None and row.status is Status.SUSPENDED
        finally:
            await storage.close()

    return asyncio.run(read())


def _invoke(*args: str) -> tuple[int, str, str]:
    """`wfc …` in this process (quicker than a child for the refusals)."""
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_signal_from_the_cli_resumes_a_run_a_worker_waits_on(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    package = counted_package(tmp_path)
    _wait_for_go(package)
    env = environment(db, tmp_path / "ledger")
    code, out, err = _invoke(
        "runs",
        "create",
        "counted",
        "--plan",
        str(package),
        "--input",
        '{"n": 1}',
        "--json",
        "--db",
        db,
    )
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    worker = start_worker(package, env, tmp_path, tmp_path / "worker.log")
    try:
        wait_until(lambda: _suspended(db, run_id, "second"), 30, "the run to wait for the signal")
        code, shown, _ = _invoke("runs", "show", run_id, "--db", db)
        assert "second waits for signal go (since" in shown and "times out at" in shown

        code, _, err = _invoke(
            "runs", "signal", run_id, "go", "--payload", '{"n": "x", "m": 1}', "--db", db
        )
        assert code == 2 and "Traceback" not in err
        assert "  - n: expected integer, got string" in err
        assert "  - m: not a field of the payload (fields: n)" in err
        # JSON the shell can type but no database stores: refused the same way.
        for stored_by_none in ('{"n": NaN}', '{"n": 1, "note": "a\\u0000b"}'):
            code, _, err = _invoke(
                "runs", "signal", run_id, "go", "--payload", stored_by_none, "--db", db
            )
            assert code == 2 and "Traceback" not in err, err
            assert "which no database can store" in err and "no signal was sent" in err

        sent = wfc(
            "runs",
            "signal",
            run_id,
            "go",
            "--payload",
            '{"n": 10}',
            "--key",
            "k1",
            env=env,
            cwd=tmp_path,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == f"signal go delivered to stage second of run {run_id}"
        done = wait_until(
            lambda: (
                (run := _run(db, run_id)) is not None and run.status is Status.COMPLETED and run
            ),
            30,
            "the run to finish",
        )
    finally:
        stop(worker)
    assert done.output == {"n": 11}  # the payload was the second stage's output
    code, out, _ = _invoke(
        "runs", "signal", run_id, "go", "--payload", '{"n": 10}', "--key", "k1", "--db", db
    )
    assert code == 0 and "(sent before under this key)" in out
    code, _, err = _invoke("runs", "signal", run_id, "go", "--payload", '{"n": 10}', "--db", db)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"Error: Cannot signal run {run_id}: it is COMPLETED: a finished run takes no signals"
    ]
    code, _, err = _invoke("runs", "signal", "nope", "go", "--db", db)
    assert code == 1 and err.strip() == "Error: no run starts with 'nope'"
