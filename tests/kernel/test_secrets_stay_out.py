"""A stage error quoting an API key: the key reaches no row, job, log, event or screen."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, field_validator

from tests.databases import open_storage
from tests.kernel.conftest import Script, Words, build_workflows
from tests.kernel.helpers import run_of, stage_of, start, step
from wfc.cli import cli
from wfc.cli.display import describe
from wfc.errors import RetryStage
from wfc.runtime import Failed, WorkflowBuilder, define_stage
from wfc.runtime.records import LogRecord, OutboxRecord, Status
from wfc.runtime.redact import is_secret_name
from wfc.testing import FakeClock, TestKernel, make_test_kernel

KEY = "sk-proj-abcdef0123456789"
DB_URL = "postgresql://app:hunter2-db-pass@db.internal:5432/prod"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(os.environ):
        if is_secret_name(name):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def _leaky(ctx: Any) -> Words:
    ctx.log("INFO", f"calling with {KEY}", key=KEY, nested={"url": DB_URL})
    ctx.progress(0.5, f"using {KEY}", details={"key": KEY})
    raise ValueError(f"bad key {os.environ['OPENAI_API_KEY']} for {DB_URL}")


async def _everything_stored(tk: TestKernel, run_id: str) -> str:
    """Every row of the run the kernel wrote, as one text to search."""
    run = await run_of(tk, run_id)
    parts: list[Any] = [run.error, run.output]
    parts += [(row.error, row.metrics) for row in await tk.persistence.stages_of_run(run_id)]
    parts += [(job.last_error, job.payload) for job in await tk.all_jobs()]
    parts += [(log.message, log.fields) for log in await tk.persistence.logs_of_run(run_id)]
    parts += [event.payload for event in await tk.persistence.outbox_of_run(run_id)]
    return json.dumps(parts, default=str)


async def test_a_stage_error_quoting_a_key_is_stored_redacted_everywhere(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", _leaky, _leaky, _leaky)
    run_id = await start(tk, "linear")
    for _ in range(3):
        await step(tk)
        tk.clock.advance(minutes=1)
    run = await run_of(tk, run_id)
    assert run.status is Status.FAILED
    stored = await _everything_stored(tk, run_id)
    assert KEY not in stored and "hunter2-db-pass" not in stored
    expected = "ValueError: bad key *** for postgresql://app:***@db.internal:5432/prod"
    assert (await stage_of(tk, run_id, "split")).error == expected
    assert run.error is not None and run.error["message"] == expected
    assert (await tk.all_jobs())[0].last_error == expected
    logs = await tk.persistence.logs_of_run(run_id)
    assert (logs[0].message, logs[0].fields) == (
        "calling with ***",
        {"key": "***", "nested": {"url": "postgresql://app:***@db.internal:5432/prod"}},
    )
    kept = [log.fields["traceback"] for log in logs if "traceback" in log.fields]
    assert kept and all("in _leaky" in where and "bad key ***" in where for where in kept)
    progress = [e.payload for e in await tk.persistence.outbox_of_run(run_id)]
    progress = [p for p in progress if p["type"] == "stage:progress"]
    assert progress and all(
        (p["message"], p["details"]) == ("using ***", {"key": "***"}) for p in progress
    )


async def test_retry_messages_and_failed_checks_are_redacted(
    tk: TestKernel, script: Script
) -> None:
    script.then("split", RetryStage(f"rate limited for {KEY}"))
    run_id = await start(tk, "linear")
    outcome = await step(tk)
    assert outcome.error == "rate limited for ***"
    script.then("check", Failed(error=f"batch rejected: key {KEY}"))
    batch_id = await start(tk, "batch")
    assert (await tk.drive(batch_id)).status is Status.FAILED
    assert (await stage_of(tk, batch_id, "submit")).error == "batch rejected: key ***"
    assert KEY not in await _everything_stored(tk, run_id)
    assert KEY not in await _everything_stored(tk, batch_id)


class _Token(BaseModel):
    token: str


class _Checked(BaseModel):
    token: str

    @field_validator("token")
    @classmethod
    def refuse(cls, value: str) -> str:
        raise ValueError(f"rejected {value}")


async def test_an_input_refused_by_a_validator_quoting_it_is_redacted() -> None:
    """The early failures (input or config that fails its model) are redacted too."""
    workflow = (
        WorkflowBuilder("tokens", "Tokens")
        .pipe(define_stage(id="issue", output=_Token, execute=lambda ctx: _Token(token=KEY)))
        .pipe(define_stage(id="use", input=_Checked, output=_Token, execute=lambda ctx: ctx.input))
        .build()
    )
    tk = make_test_kernel(workflow)
    run_id = await start(tk, "tokens", {})
    assert (await tk.drive(run_id)).status is Status.FAILED
    error = (await stage_of(tk, run_id, "use")).error
    assert error is not None and "rejected ***" in error and KEY not in error
    assert KEY not in await _everything_stored(tk, run_id)


async def _failed_run_with_a_raw_log(url: str) -> str:
    script = Script()
    script.then("split", _leaky, _leaky, _leaky)
    clock = FakeClock()
    storage = open_storage(url, clock=clock)
    await storage.prepare()
    tk = make_test_kernel(*build_workflows(script), clock=clock, storage=storage)
    run_id = await start(tk, "linear")
    for _ in range(3):
        await step(tk)
        tk.clock.advance(minutes=1)
    # As if written before redaction existed, or by code that does not redact.
    split = await stage_of(tk, run_id, "split")
    await tk.persistence.update_stage(split.id, {"error": f"ValueError: bad key {KEY}"})
    run = await run_of(tk, run_id)
    assert run.error is not None
    await tk.persistence.update_run(run_id, {"error": {**run.error, "message": f"raw {KEY}"}})
    await tk.persistence.add_log(
        LogRecord(
            id="raw-log",
            run_id=run_id,
            stage_record_id=split.id,
            level="ERROR",
            message=f"raw {KEY}",
            fields={"key": KEY},
            created_at=clock.now(),
        )
    )
    await storage.close()
    return run_id


def test_runs_show_prints_no_key_even_from_rows_stored_unredacted(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    run_id = asyncio.run(_failed_run_with_a_raw_log(url))
    runner = CliRunner()
    text = runner.invoke(cli, ["runs", "show", run_id, "--logs", "--db", url])
    shown = runner.invoke(cli, ["runs", "show", run_id, "--logs", "--json", "--db", url])
    assert text.exit_code == 0 and shown.exit_code == 0, text.output + shown.output
    assert "bad key ***" in text.output and "raw ***" in text.output
    assert KEY not in text.output and KEY not in shown.output
    body = json.loads(shown.output)
    assert body["error"]["message"] == "raw ***"
    assert body["stages"][0]["error"] == "ValueError: bad key ***"
    assert [line["fields"] for line in body["logs"] if line["message"] == "raw ***"] == [
        {"key": "***"}
    ]


async def _run_with_artifacts_on_its_second_attempt(url: str) -> str:
    script = Script()

    def producing(ctx: Any) -> Words:
        ctx.artifact("report.html", "<p>hi</p>")
        ctx.artifact("stats.json", {"n": 1})
        return Words(words=["x"])

    script.then("split", _leaky, producing)
    clock = FakeClock()
    storage = open_storage(url, clock=clock)
    await storage.prepare()
    tk = make_test_kernel(*build_workflows(script), clock=clock, storage=storage)
    run_id = await start(tk, "linear")
    assert (await tk.drive(run_id)).status is Status.COMPLETED
    await storage.close()
    return run_id


def test_runs_show_lists_the_committed_attempt_s_artifacts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    run_id = asyncio.run(_run_with_artifacts_on_its_second_attempt(url))
    runner = CliRunner()
    shown = runner.invoke(cli, ["runs", "show", run_id, "--json", "--db", url])
    assert shown.exit_code == 0, shown.output
    stages = {s["stage_id"]: s for s in json.loads(shown.output)["stages"]}
    prefix = f"runs/linear/{run_id}/split/artifacts/0.2/"
    assert stages["split"]["artifacts"] == [
        {"name": "report.html", "key": prefix + "report.html"},
        {"name": "stats.json", "key": prefix + "stats.json"},
    ]
    assert stages["count"]["artifacts"] == []
    text = runner.invoke(cli, ["runs", "show", run_id, "--db", url])
    assert text.exit_code == 0, text.output
    lines = [line.split() for line in text.output.splitlines()]
    assert ["│", "split", "│", "report.html", "│", prefix + "report.html", "│"] in lines
    assert ["│", "split", "│", "stats.json", "│", prefix + "stats.json", "│"] in lines


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("stage:failed", {"stage_id": "split", "error": f"bad key {KEY}"}),
        ("stage:progress", {"stage_id": "split", "progress": 0.5, "message": f"key {KEY}"}),
        ("workflow:cancelled", {"reason": f"leaked {KEY}"}),
    ],
)
def test_the_live_view_of_wfc_run_prints_no_key(event_type: str, payload: dict[str, Any]) -> None:
    event = OutboxRecord(
        run_id="r",
        sequence=1,
        event_type=event_type,
        payload=payload,
        causation_id="c",
        occurred_at=FakeClock().now(),
    )
    line = describe(event)
    assert line is not None and KEY not in line and "***" in line
