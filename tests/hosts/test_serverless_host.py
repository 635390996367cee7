"""ServerlessHost: runs progress across bounded invocations, from messages or a cron drain."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from tests.hosts.conftest import Backend
from tests.kernel.conftest import Script
from wfc.errors import NonRetryableError
from wfc.runtime import JobMessage, RunCreate, ServerlessHost, Status
from wfc.runtime.hosts.steps import idempotency_key
from wfc.runtime.records import Acquired

DOC = {"text": "the quick brown fox"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def create(host: ServerlessHost, workflow_id: str, key: str) -> str:
    result = await host.kernel.dispatch(
        RunCreate(idempotency_key=key, workflow_id=workflow_id, input=DOC)
    )
    return result.workflow_run_id


async def test_a_loop_of_handle_job_calls_finishes_a_fan_out_run(
    backend: Backend, script: Script
) -> None:
    host = ServerlessHost(backend.kernel())
    run_id = await create(host, "fanout", "sls-1")
    assert (await host.run_maintenance_tick()).claimed == 1
    handled = 0
    for _ in range(10):
        due = [
            j for j in await backend.storage.jobs.jobs_of_run(run_id) if j.status is Status.PENDING
        ]
        if not due:
            break
        for job in due:  # what a queue would deliver, one message per job
            message = JobMessage.of(job).model_dump_json(by_alias=True)
            assert '"workflowRunId"' in message
            outcome = await host.handle_job(message)
            assert outcome.outcome == "completed"
            handled += 1
    run = await backend.storage.persistence.get_run(run_id)
    assert run is not None and run.status is Status.COMPLETED
    assert run.output == {"summary": "THE QUICK BROWN FOX (16)"}
    assert handled == 4
    assert script.calls == {"split": 1, "upper": 1, "length": 1, "join": 1}


async def test_a_repeated_message_replays_its_result_without_running_the_stage_again(
    backend: Backend, script: Script
) -> None:
    """A queue that delivers at least once may hand the same message over twice: the
    delivery's idempotency key answers the second with the first's result."""
    script.then("split", RuntimeError("flaky"))
    host = ServerlessHost(backend.kernel())
    run_id = await create(host, "linear", "sls-twice")
    await host.run_maintenance_tick()
    (job,) = await backend.storage.jobs.jobs_of_run(run_id)
    message = JobMessage.of(job).model_dump_json(by_alias=True)
    first = await host.handle_job(message)
    again = await host.handle_job(message)
    assert (
        first.outcome == again.outcome == "failed"
        and again.error == first.error == "RuntimeError: flaky"
    )
    assert script.calls["split"] == 1


async def test_a_job_the_host_leased_runs_without_an_idempotency_key(backend: Backend) -> None:
    """Only the lease holder runs a leased attempt, so there is no repeat for a key to catch;
    skipping it saves a statement before the stage and one in the outcome's transaction."""
    host = ServerlessHost(backend.kernel())
    run_id = await create(host, "linear", "sls-leased")
    await host.run_maintenance_tick()
    assert (await host.process_available_jobs()).succeeded == 1
    (job, _) = await backend.storage.jobs.jobs_of_run(run_id)
    persistence = backend.storage.persistence
    key = idempotency_key(job)
    now = host.kernel.deps.clock.now()
    assert isinstance(
        await persistence.acquire_idempotency_key(key, "job.execute", now, None), Acquired
    )


async def test_process_available_jobs_counts_outcomes_and_stops_when_the_queue_is_empty(
    backend: Backend, script: Script
) -> None:
    script.then("count", NonRetryableError("bad count"))
    host = ServerlessHost(backend.kernel())
    ok_run = await create(host, "fanout", "sls-ok")
    bad_run = await create(host, "linear", "sls-bad")
    tick = await host.run_maintenance_tick()
    assert (tick.claimed, tick.errors) == (2, [])
    drained = await host.process_available_jobs(max_jobs=100)
    assert (drained.processed, drained.succeeded, drained.failed) == (6, 5, 1)
    assert (await host.process_available_jobs(max_jobs=5)).processed == 0
    statuses = [
        getattr(await backend.storage.persistence.get_run(r), "status", None)
        for r in (ok_run, bad_run)
    ]
    assert statuses == [Status.COMPLETED, Status.FAILED]
    assert (await host.run_maintenance_tick()).events_flushed > 0


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lambda_example", EXAMPLES / "serverless" / "handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lambda_example_finishes_a_run_from_cron_and_sqs_invocations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from wfc.runtime.adapters.sql import open_storage
    from wfc.runtime.hosts import make_kernel
    from wfc.runtime.registry import load_registry

    url = f"sqlite+aiosqlite:///{tmp_path / 'lambda.db'}"
    monkeypatch.setenv("WFC_DATABASE_URL", url)
    monkeypatch.setenv("WFC_DRAIN_JOBS", "1")
    example = load_example()

    async def create_run() -> str:
        storage = open_storage(url)
        await storage.prepare()
        kernel = make_kernel(storage, load_registry([example.DEFAULT_PLANS]))
        created = await kernel.dispatch(
            RunCreate(
                idempotency_key="lambda",
                workflow_id="document_processor",
                input={"document": "Great product. I love it."},
            )
        )
        await storage.close()
        return created.workflow_run_id

    async def pending_messages(run_id: str) -> list[dict[str, str]]:
        storage = open_storage(url)
        jobs = await storage.jobs.jobs_of_run(run_id)
        run = await storage.persistence.get_run(run_id)
        await storage.close()
        assert run is not None
        if run.status is not Status.RUNNING:
            return []
        return [
            {"messageId": j.id, "body": JobMessage.of(j).model_dump_json(by_alias=True)}
            for j in jobs
            if j.status is Status.PENDING
        ]

    run_id = asyncio.run(create_run())
    first = example.cron_handler({}, None)  # claims the run and drains one job
    assert (first["claimed"], first["processed"], first["failed"]) == (1, 1, 0)
    for _ in range(10):
        records = asyncio.run(pending_messages(run_id))
        if not records:
            break
        assert example.sqs_handler({"Records": records}, None) == {"batchItemFailures": []}

    async def finished() -> object:
        storage = open_storage(url)
        run = await storage.persistence.get_run(run_id)
        await storage.close()
        return run

    run = asyncio.run(finished())
    assert getattr(run, "status", None) is Status.COMPLETED
    assert json.loads(json.dumps(getattr(run, "output", None)))["sentiment"] == "positive"
