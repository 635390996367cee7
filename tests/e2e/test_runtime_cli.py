"""`wfc run`, `wfc worker`, `wfc runs` and `wfc maintenance` as real processes.

SQLite cases run in a temporary working directory (the embedded default);
the multi-worker cases share a real PostgreSQL database migrated by
`wfc db upgrade`, with stages that write every execution to a ledger file.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES
from tests.databases import create_database, drop_database
from tests.e2e.workers import (
    counted_package,
    environment,
    ledger,
    start_worker,
    stop,
    wait_until,
    wfc,
)
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.commands import RunCreate
from wfc.runtime.hosts import make_kernel
from wfc.runtime.records import RunRecord, Status
from wfc.runtime.registry import load_registry


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database migrated by `wfc db upgrade`, as an operator would."""
    url = asyncio.run(create_database(empty=True))
    try:
        migrated = wfc(
            "db", "upgrade", "--url", url, env=environment(url, tmp_path / "l"), cwd=tmp_path
        )
        assert migrated.returncode == 0, migrated.stderr
        yield url
    finally:
        asyncio.run(drop_database(url))


def runs_in(url: str) -> list[RunRecord]:
    async def read() -> list[RunRecord]:
        storage = open_storage(url)
        try:
            return await storage.persistence.list_runs(limit=100_000)
        finally:
            await storage.close()

    return asyncio.run(read())


def jobs_in(url: str, run_id: str) -> list[Any]:
    async def read() -> list[Any]:
        storage = open_storage(url)
        try:
            return await storage.jobs.jobs_of_run(run_id)
        finally:
            await storage.close()

    return asyncio.run(read())


def create_runs(url: str, package: Path, count: int) -> list[str]:
    async def create() -> list[str]:
        storage = open_storage(url)
        try:
            kernel = make_kernel(storage, load_registry([package]))
            ids = []
            for n in range(count):
                result = await kernel.dispatch(
                    RunCreate(idempotency_key=f"e2e-{n}", workflow_id="counted", input={"n": n})
                )
                ids.append(result.workflow_run_id)
            return ids
        finally:
            await storage.close()

    return asyncio.run(create())


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    env = environment("", tmp_path / "ledger")
    env.pop("WFC_DATABASE_URL")
    return env


# -- wfc run ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "run_input", "config", "expect"),
    [
        (
            "documents/pipeline.wf",
            {"document": "Great product. I love it."},
            None,
            {"sentiment": "positive"},
        ),
        (
            "batch/embeddings.wf",
            {"texts": ["red apple", "green apple", "blue sky"], "dimensions": 8},
            {"embed": {"check_every_seconds": 0.2}},
            {"count": 3, "dimensions": 8},
        ),
        (
            "reviews/reviews.wf",
            {"reviews": ["Great!", "Awful."]},
            {"classify": {"check_every_seconds": 0.2}},
            {"positive": 2},
        ),
        (
            "invoices/invoice.wf",
            {
                "customer": {
                    "id": "c1",
                    "name": "Ada",
                    "email": "ada@example.com",
                    "country": "DE",
                },
                "items": [
                    {
                        "description": "pen",
                        "quantity": 2,
                        "unit_price": {"cents": 1000, "currency": "EUR"},
                    }
                ],
                "coupon": "WELCOME10",
            },
            None,
            {"lines": 1},
        ),
    ],
)
def test_wfc_run_finishes_every_example_on_the_embedded_database(
    tmp_path: Path,
    source: str,
    run_input: dict[str, Any],
    config: dict[str, Any] | None,
    expect: dict[str, Any],
) -> None:
    example = tmp_path / "example"
    shutil.copytree((EXAMPLES / source).parent, example)
    args = ["run", str(example / Path(source).name), "--input", json.dumps(run_input)]
    if config:
        args += ["--config", json.dumps(config)]
    result = wfc(*args, env=sqlite_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert {k: output[k] for k in expect} == expect
    assert "completed" in result.stderr and "▶" in result.stderr
    assert (tmp_path / ".wfc" / "wfc.db").exists()
    listed = wfc("runs", "list", "--json", env=sqlite_env(tmp_path), cwd=tmp_path)
    assert [r["status"] for r in json.loads(listed.stdout)] == ["COMPLETED"]


def test_wfc_run_refuses_bad_input_with_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    docs = EXAMPLES / "documents" / "pipeline.wf"
    env = sqlite_env(tmp_path)
    not_json = wfc("run", str(docs), "--input", "{document: 1", env=env, cwd=tmp_path)
    assert not_json.returncode == 2
    assert "Invalid value for --input: not JSON" in not_json.stderr
    wrong = wfc("run", str(docs), "--input", '{"document": "", "extra": 1}', env=env, cwd=tmp_path)
    assert wrong.returncode == 2
    assert "invalid input for workflow document_processor" in wrong.stderr
    assert "document: String should have at least 1 character" in wrong.stderr
    assert "no run was created" in wrong.stderr and "Traceback" not in wrong.stderr
    listed = wfc("runs", "list", "--json", env=env, cwd=tmp_path)
    assert json.loads(listed.stdout) == []


def test_wfc_run_exits_1_naming_the_stage_that_failed(tmp_path: Path) -> None:
    source = tmp_path / "fresh.wf"
    source.write_text(
        "workflow fresh {\n  input { n: int }\n  output { n: int }\n"
        "  stage only { input { n: int } output { n: int } }\n  flow only\n}\n"
    )
    result = wfc("run", str(source), "--input", '{"n": 1}', env=sqlite_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "failed at stage only" in result.stderr
    assert "implement execute()" in result.stderr
    assert (tmp_path / "fresh" / "stages" / "only.py").exists()  # compiled on the way
    env = sqlite_env(tmp_path)
    (run,) = json.loads(wfc("runs", "list", "--json", env=env, cwd=tmp_path).stdout)
    shown = json.loads(wfc("runs", "show", run["run_id"], "--json", env=env, cwd=tmp_path).stdout)
    where = shown["stages"][0]["traceback"]  # where the stub raised, not only what
    assert "Traceback (most recent call last)" in where and "stages/only.py" in where
    text = wfc("runs", "show", run["run_id"], env=env, cwd=tmp_path).stdout
    assert "only raised:" in text and "stages/only.py" in text


# -- workers on PostgreSQL ------------------------------------------------------------


def test_two_workers_finish_200_runs_and_execute_each_stage_once(
    tmp_path: Path, pg_url: str
) -> None:
    package = counted_package(tmp_path)
    env = environment(pg_url, tmp_path / "ledger")
    run_ids = create_runs(pg_url, package, 200)
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = [
        start_worker(package, env, tmp_path, log, "--concurrency", "2", "--worker-id", f"w{n}")
        for n, log in enumerate(logs)
    ]
    try:
        wait_until(
            lambda: all(r.status is Status.COMPLETED for r in runs_in(pg_url)),
            timeout=180,
            what="200 runs to complete",
        )
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]
    counts = ledger(tmp_path / "ledger")
    expected = {
        (what, run, stage)
        for run in run_ids
        for stage in ("first", "second", "third")
        for what in ("start", "done")
    }
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    exits = [json.loads(log.read_text().splitlines()[-1]) for log in logs]
    assert [e["msg"] for e in exits] == ["exited", "exited"]
    assert sum(e["jobs_processed"] for e in exits) == 600
    assert all(e["jobs_processed"] > 0 for e in exits), exits
    assert {r.output["n"] for r in runs_in(pg_url) if r.output} == {n + 3 for n in range(200)}


def test_a_killed_worker_s_stage_is_run_again_by_another_worker(
    tmp_path: Path, pg_url: str
) -> None:
    package = counted_package(tmp_path)
    env = environment(pg_url, tmp_path / "ledger", COUNTED_SLOW_STAGE="second")
    (run_id,) = create_runs(pg_url, package, 1)
    doomed = start_worker(package, env, tmp_path, tmp_path / "doomed.log", "--stale-lease", "2")
    wait_until(lambda: (tmp_path / "ledger.slow").exists(), 30, "the slow stage to start")
    assert stop(doomed, signal.SIGKILL) == -signal.SIGKILL
    assert Status.RUNNING in {j.status for j in jobs_in(pg_url, run_id)}  # left behind
    rescuer = start_worker(package, env, tmp_path, tmp_path / "rescuer.log", "--stale-lease", "2")
    try:
        run = wait_until(
            lambda: next(
                (r for r in runs_in(pg_url) if r.status in {Status.COMPLETED, Status.FAILED}), None
            ),
            timeout=60,
            what="the run to finish after the lease is reaped",
        )
    finally:
        assert stop(rescuer) == 0
    assert run.status is Status.COMPLETED and run.output == {"n": 3}
    counts = ledger(tmp_path / "ledger")
    assert counts[("start", run_id, "second")] == 2  # killed once, run again
    assert counts[("done", run_id, "second")] == 1
    assert counts[("done", run_id, "third")] == 1
    assert {j.status for j in jobs_in(pg_url, run_id)} == {Status.COMPLETED}


def test_sigterm_stops_gracefully_and_leaves_no_job_running(tmp_path: Path, pg_url: str) -> None:
    package = counted_package(tmp_path)
    env = environment(pg_url, tmp_path / "ledger", COUNTED_SLOW_STAGE="first")
    (run_id,) = create_runs(pg_url, package, 1)
    log = tmp_path / "worker.log"
    worker = start_worker(package, env, tmp_path, log, "--grace", "0.5")
    wait_until(lambda: (tmp_path / "ledger.slow").exists(), 30, "the slow stage to start")
    assert stop(worker, signal.SIGTERM) == 0
    jobs = jobs_in(pg_url, run_id)
    assert [j.status for j in jobs] == [Status.PENDING]  # released for another worker
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["msg"].startswith("released job") for line in lines)
    assert lines[-1]["msg"] == "exited" and lines[-1]["running"] is False

    finisher = start_worker(package, env, tmp_path, tmp_path / "finisher.log")
    try:
        wait_until(
            lambda: runs_in(pg_url)[0].status is Status.COMPLETED, 30, "another worker to finish"
        )
    finally:
        assert stop(finisher) == 0


def test_runs_cancel_while_a_worker_executes_stops_the_run(tmp_path: Path, pg_url: str) -> None:
    package = counted_package(tmp_path)
    env = environment(pg_url, tmp_path / "ledger", COUNTED_SLOW_STAGE="first")
    (run_id,) = create_runs(pg_url, package, 1)
    worker = start_worker(package, env, tmp_path, tmp_path / "worker.log")
    try:
        wait_until(lambda: (tmp_path / "ledger.slow").exists(), 30, "the slow stage to start")
        cancelled = wfc(
            "runs", "cancel", run_id, "--reason", "changed my mind", "--json", env=env, cwd=tmp_path
        )
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout) == {"run_id": run_id, "cancelled": True}
        (tmp_path / "ledger.release").touch()  # `first` ends only now, cancelled while it ran
        wait_until(
            lambda: ("done", run_id, "first") in ledger(tmp_path / "ledger"), 30, "the stage to end"
        )
        wait_until(
            lambda: Status.RUNNING not in {j.status for j in jobs_in(pg_url, run_id)},
            30,
            "the worker to settle the job",
        )
    finally:
        assert stop(worker) == 0
    (run,) = runs_in(pg_url)
    assert run.status is Status.CANCELLED
    assert ("start", run_id, "second") not in ledger(tmp_path / "ledger")
    shown = wfc("runs", "show", run_id, "--json", env=env, cwd=tmp_path)
    body = json.loads(shown.stdout)
    assert body["status"] == "CANCELLED"
    assert [s["stage_id"] for s in body["stages"]] == ["first"]
    again = wfc("runs", "cancel", run_id, env=env, cwd=tmp_path)
    assert again.returncode == 1 and "missing or finished" in again.stderr


def test_runs_create_then_maintenance_tick_and_rerun_from_the_shell(
    tmp_path: Path, pg_url: str
) -> None:
    package = counted_package(tmp_path)
    env = environment(pg_url, tmp_path / "ledger")
    created = wfc(
        "runs",
        "create",
        "counted",
        "--plan",
        str(package),
        "--input",
        '{"n": 5}',
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr
    run_id = json.loads(created.stdout)["run_id"]
    tick = wfc("maintenance", "tick", "--plan", str(package), "--json", env=env, cwd=tmp_path)
    assert tick.returncode == 0 and json.loads(tick.stdout)["claimed"] == 1
    assert [j.stage_id for j in jobs_in(pg_url, run_id)] == ["first"]
    worker = start_worker(package, env, tmp_path, tmp_path / "worker.log")
    try:
        wait_until(lambda: runs_in(pg_url)[0].status is Status.COMPLETED, 30, "the run")
        rerun = wfc(
            "runs",
            "rerun",
            run_id,
            "--from",
            "second",
            "--plan",
            str(package),
            "--json",
            env=env,
            cwd=tmp_path,
        )
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["deleted_stages"] == ["second", "third"]
        wait_until(
            lambda: ledger(tmp_path / "ledger")[("done", run_id, "third")] == 2, 30, "the rerun"
        )
        wait_until(lambda: runs_in(pg_url)[0].status is Status.COMPLETED, 30, "the rerun to end")
    finally:
        assert stop(worker) == 0
    assert ledger(tmp_path / "ledger")[("done", run_id, "first")] == 1
    shown = wfc("runs", "show", run_id, env=env, cwd=tmp_path)
    assert shown.returncode == 0 and "COMPLETED" in shown.stdout and "third" in shown.stdout


def test_ctrl_c_in_wfc_run_keeps_the_run_for_a_worker_to_finish(tmp_path: Path) -> None:
    import subprocess
    import sys

    package = counted_package(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / '.wfc' / 'wfc.db'}"
    env = environment(url, tmp_path / "ledger", COUNTED_SLOW_STAGE="first")
    env.pop("WFC_DATABASE_URL")  # the embedded default, as a new user has it
    run = subprocess.Popen(
        [sys.executable, "-m", "wfc", "run", str(tmp_path / "counted.wf"), "--input", '{"n": 1}'],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: (tmp_path / "ledger.slow").exists(), 30, "the slow stage to start")
    run.send_signal(signal.SIGINT)
    _out, err = run.communicate(timeout=30)  # the stage sleeps 30 s: nobody waits for it
    assert run.returncode == 130, err
    assert "interrupted: the run is kept" in err
    (kept,) = runs_in(url)
    assert kept.status is Status.RUNNING
    assert [j.status for j in jobs_in(url, kept.id)] == [Status.PENDING]

    worker = start_worker(package, {**env, "WFC_DATABASE_URL": url}, tmp_path, tmp_path / "w.log")
    try:
        wait_until(lambda: runs_in(url)[0].status is Status.COMPLETED, 30, "the worker")
    finally:
        assert stop(worker) == 0
    assert runs_in(url)[0].output == {"n": 4}


def test_runs_create_refuses_what_a_database_would_with_exit_2(tmp_path: Path) -> None:
    package = EXAMPLES / "documents" / "document_processor"
    env = sqlite_env(tmp_path)
    base = ("runs", "create", "document_processor", "--plan", str(package), "--input")
    doc = '{"document": "x"}'
    too_big = wfc(*base, doc, "--priority", str(2**31), env=env, cwd=tmp_path)
    assert too_big.returncode == 2 and "is not in the range" in too_big.stderr
    empty_key = wfc(*base, doc, "--idempotency-key", "", env=env, cwd=tmp_path)
    assert empty_key.returncode == 2 and "an empty key makes no run idempotent" in empty_key.stderr
    nul = wfc(*base, '{"document": "a\\u0000b"}', env=env, cwd=tmp_path)
    assert nul.returncode == 2 and "input.document: U+0000" in nul.stderr
    for result in (too_big, empty_key, nul):
        assert "Traceback" not in result.stderr
    listed = wfc("runs", "list", "--json", env=env, cwd=tmp_path)
    assert json.loads(listed.stdout) == []


MAPPED = """workflow tally {
  type Word { text: str }
  input { words: list[Word] }
  output { total: int, failed: int }

  stage measure "Measure" {
    map input.words, at most 2 at once, on failure continue
    output { length: int }
    retry 1 times
  }
  stage total {
    input none
    needs measure
    output { total: int, failed: int }
  }
  flow measure -> total
}
"""

MEASURE = """
import os
from pathlib import Path

from .._models import MeasureOutput
from .._stages import MeasureContext, MeasureStage


class Measure(MeasureStage):
    def execute(self, ctx: MeasureContext) -> MeasureOutput:
        if ctx.item.text == "bad" and Path(os.environ["TALLY_BROKEN"]).exists():
            raise ValueError("no measure for bad")
        return MeasureOutput(length=len(ctx.item.text))
"""

TOTAL = """
from .._models import TotalOutput
from .._stages import TotalContext, TotalStage


class Total(TotalStage):
    def execute(self, ctx: TotalContext) -> TotalOutput:
        results = ctx.measure
        lengths = [r.output.length for r in results if r.output is not None]
        return TotalOutput(total=sum(lengths), failed=sum(not r.ok for r in results))
"""


def test_a_mapped_stage_from_the_shell_show_its_items_and_rerun_the_failed_ones(
    tmp_path: Path,
) -> None:
    source = tmp_path / "tally.wf"
    source.write_text(MAPPED)
    broken = tmp_path / "broken"
    broken.touch()
    env = sqlite_env(tmp_path) | {"TALLY_BROKEN": str(broken)}
    assert wfc("compile", str(source), env=env, cwd=tmp_path).returncode == 0
    (tmp_path / "tally" / "stages" / "measure.py").write_text(MEASURE)
    (tmp_path / "tally" / "stages" / "total.py").write_text(TOTAL)
    words = {"words": [{"text": t} for t in ["a", "bad", "ccc", "dd", "bad"]]}
    ran = wfc("run", str(source), "--input", json.dumps(words), env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"total": 6, "failed": 2}
    run_id = json.loads(wfc("runs", "list", "--json", env=env, cwd=tmp_path).stdout)[0]["run_id"]
    shown = wfc("runs", "show", run_id, "--items", "measure", "--json", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    measure = next(s for s in body["stages"] if s["stage_id"] == "measure")
    assert measure["items"] == {"total": 5, "done": 3, "failed": 2, "running": 0}
    assert [(i["index"], i["status"]) for i in body["items"]] == [
        (0, "COMPLETED"),
        (1, "FAILED"),
        (2, "COMPLETED"),
        (3, "COMPLETED"),
        (4, "FAILED"),
    ]
    assert "ValueError: no measure for bad" in body["items"][1]["error"]
    text = wfc("runs", "show", run_id, env=env, cwd=tmp_path)
    assert "3/5 done, 2 failed, 0 running" in text.stdout
    broken.unlink()  # the cause is fixed: run the failed items again, and only those
    rerun = wfc(
        "runs", "rerun", run_id, "--from", "measure", "--failed-items",
        "--plan", str(tmp_path / "tally"), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    worker = start_worker(tmp_path / "tally", env, tmp_path, tmp_path / "worker.log")
    try:
        wait_until(lambda: _status_of(tmp_path, env, run_id) == "COMPLETED", 30, "the rerun")
    finally:
        assert stop(worker) == 0
    again = json.loads(
        wfc("runs", "show", run_id, "--items", "measure", "--json", env=env, cwd=tmp_path).stdout
    )
    assert again["output"] == {"total": 12, "failed": 0}
    assert [i["attempts"] for i in again["items"]] == [1, 1, 1, 1, 1]  # the rerun's first
    refused = wfc(
        "runs", "rerun", run_id, "--from", "total", "--failed-items",
        "--plan", str(tmp_path / "tally"), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "is not mapped" in refused.stderr


def _status_of(cwd: Path, env: dict[str, str], run_id: str) -> str:
    shown = wfc("runs", "show", run_id, "--json", env=env, cwd=cwd)
    return str(json.loads(shown.stdout)["status"])


EVENTS_PLUGIN = """
import json
import os

from wfc.runtime import define_plugin


def _append(event):
    with open(os.environ["EVENTS_FILE"], "a") as out:
        out.write(json.dumps({"type": event.type, "run": event.workflow_run_id}) + "\\n")


def plugins():
    return [define_plugin(id="file", on=["workflow:completed", "stage:completed"], handle=_append)]
"""


def _fresh_run(tmp_path: Path, env: dict[str, str]) -> str:
    """`fresh` (one stage adding 1) compiled into tmp_path, and a run of it created from the
    shell; the run's id."""
    source = tmp_path / "fresh.wf"
    source.write_text(
        "workflow fresh {\n  input { n: int }\n  output { n: int }\n"
        "  stage only { input { n: int } output { n: int } }\n  flow only\n}\n"
    )
    assert wfc("compile", str(source), env=env, cwd=tmp_path).returncode == 0
    (tmp_path / "fresh" / "stages" / "only.py").write_text(
        "from .._models import OnlyOutput\nfrom .._stages import OnlyContext, OnlyStage\n\n\n"
        "class Only(OnlyStage):\n"
        "    def execute(self, ctx: OnlyContext) -> OnlyOutput:\n"
        "        return OnlyOutput(n=ctx.input.n + 1)\n"
    )
    created = wfc(
        "runs", "create", "fresh", "--plan", str(tmp_path / "fresh"), "--input", '{"n": 1}',
        "--json", env=env, cwd=tmp_path,
    )  # fmt: skip
    return str(json.loads(created.stdout)["run_id"])


def test_a_worker_delivers_run_events_to_its_plugins(tmp_path: Path) -> None:
    (tmp_path / "events_plugin.py").write_text(EVENTS_PLUGIN)
    events = tmp_path / "events.jsonl"
    env = sqlite_env(tmp_path) | {"EVENTS_FILE": str(events)}
    run_id = _fresh_run(tmp_path, env)
    bad = wfc("worker", "--plan", str(tmp_path / "fresh"), "--plugin", "events_plugin:nope",
              env=env, cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "events_plugin has no 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    worker = start_worker(
        tmp_path / "fresh", env, tmp_path, tmp_path / "worker.log",
        "--plugin", "events_plugin:plugins",
    )  # fmt: skip
    try:
        wait_until(
            lambda: events.exists() and "workflow:completed" in events.read_text(),
            30,
            "the completion to reach the plugin",
        )
    finally:
        assert stop(worker) == 0
    delivered = [json.loads(line) for line in events.read_text().splitlines()]
    assert delivered == [
        {"type": "stage:completed", "run": run_id},
        {"type": "workflow:completed", "run": run_id},
    ]


def test_a_run_no_worker_serves_waits_visibly_until_one_comes(tmp_path: Path) -> None:
    (tmp_path / "events_plugin.py").write_text(EVENTS_PLUGIN)
    env = sqlite_env(tmp_path) | {"EVENTS_FILE": str(tmp_path / "events.jsonl")}
    run_id = _fresh_run(tmp_path, env)
    shown = wfc("runs", "show", run_id, env=env, cwd=tmp_path)
    assert "waiting for a worker that serves fresh@sha256:" in shown.stdout
    as_json = json.loads(wfc("runs", "show", run_id, "--json", env=env, cwd=tmp_path).stdout)
    assert as_json["waiting_for"] == f"fresh@{as_json['plan_fingerprint']}"
    listed = wfc("runs", "list", env=env, cwd=tmp_path)
    assert "waiting for a worker that serves fresh@" in listed.stdout
    assert wfc("workers", "list", env=env, cwd=tmp_path).stdout.strip() == "no live workers"
    worker = start_worker(
        tmp_path / "fresh", env, tmp_path, tmp_path / "worker.log", "--worker-id", "w-one"
    )
    try:
        wait_until(lambda: _status_of(tmp_path, env, run_id) == "COMPLETED", 30, "the run")
        workers = json.loads(wfc("workers", "list", "--json", env=env, cwd=tmp_path).stdout)
        assert [(w["worker_id"], [p["workflow_id"] for p in w["plans"]]) for w in workers] == [
            ("w-one", ["fresh"])
        ]
        assert workers[0]["plans"][0]["fingerprint"] == as_json["plan_fingerprint"]
    finally:
        assert stop(worker) == 0
    assert wfc("workers", "list", env=env, cwd=tmp_path).stdout.strip() == "no live workers"
    done = json.loads(wfc("runs", "show", run_id, "--json", env=env, cwd=tmp_path).stdout)
    assert done["waiting_for"] is None


def test_runs_prune_deletes_finished_runs_from_the_shell(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    docs = EXAMPLES / "documents" / "pipeline.wf"
    ran = wfc("run", str(docs), "--input", '{"document": "Good. Bad."}', env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    bad = wfc("runs", "prune", "--older-than", "30 days", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "'--older-than': '30 days' is not a duration" in bad.stderr
    kept = wfc("runs", "prune", "--older-than", "1d", "--json", env=env, cwd=tmp_path)
    assert json.loads(kept.stdout) == {"runs": 0, "jobs": 0, "blobs": 0}
    pruned = wfc("runs", "prune", "--older-than", "0s", "--json", env=env, cwd=tmp_path)
    counts = json.loads(pruned.stdout)
    assert counts["runs"] == 1 and counts["jobs"] >= 6 and counts["blobs"] >= 6
    assert json.loads(wfc("runs", "list", "--json", env=env, cwd=tmp_path).stdout) == []
