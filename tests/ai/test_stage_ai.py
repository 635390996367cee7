"""`ctx.ai` inside stages: calls are logged under the stage's topic, and their cost and
tokens become the stage's and the run's totals (memory and a SQLite file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.databases import open_storage
from wfc.runtime import RecordingServices, StageContext, WorkflowBuilder, define_stage
from wfc.runtime.ai import ModelConfig, register_models
from wfc.runtime.records import Status
from wfc.testing import FakeClock, make_test_kernel

register_models(
    ModelConfig(
        key="offline-priced",
        model_id="test",
        input_cost_per_million=1.5,
        output_cost_per_million=6.0,
    )
)


class Doc(BaseModel):
    text: str


class NoConfig(BaseModel):
    pass


class Summary(BaseModel):
    summary: str
    tokens: int


async def summarise(ctx: Any) -> Summary:
    first = await ctx.ai.generate_text("offline-priced", f"Summarise: {ctx.input.text}")
    second = await ctx.ai.child("check").generate_text("offline-priced", "Is it right?")
    return Summary(summary=first.text, tokens=first.input_tokens + second.input_tokens)


async def shorten(ctx: Any) -> Summary:
    result = await ctx.ai.generate_text("offline-priced", ctx.input.summary)
    return Summary(summary=result.text[:10], tokens=result.output_tokens)


WORKFLOW = (
    WorkflowBuilder("ai_docs", "AI docs", input=Doc)
    .pipe(define_stage(id="summarise", input=Doc, output=Summary, execute=summarise))
    .pipe(define_stage(id="shorten", input=Summary, output=Summary, execute=shorten))
    .build()
)


@pytest.mark.parametrize("where", ["memory", "sqlite"])
async def test_a_run_costs_exactly_what_its_stages_logged(where: str, tmp_path: Path) -> None:
    clock = FakeClock()
    storage = None
    if where == "sqlite":
        storage = open_storage(f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}", clock=clock)
        await storage.create_schema()
    tk = make_test_kernel(WORKFLOW, clock=clock, storage=storage)
    run = await tk.run("ai_docs", {"text": "the quick brown fox"})
    assert run.status is Status.COMPLETED, run.error
    ledger = await tk.ai_calls.stats(f"workflow.{run.id}")
    assert ledger.total_calls == 3
    assert ledger.total_cost > 0
    assert run.total_cost == pytest.approx(ledger.total_cost)
    assert run.total_tokens == ledger.total_input_tokens + ledger.total_output_tokens
    stages = {s.stage_id: s for s in await tk.persistence.stages_of_run(run.id)}
    assert run.version > 1
    first = await tk.ai_calls.stats(f"workflow.{run.id}.stage.summarise")
    assert first.total_calls == 2  # the child topic is under the stage's
    assert stages["summarise"].metrics["total_cost"] == pytest.approx(first.total_cost)
    if storage is not None:
        await storage.close()


async def test_a_running_run_shows_what_it_has_cost_so_far() -> None:
    from wfc.runtime.commands import RunClaimPending
    from wfc.runtime.hosts import process_job

    tk = make_test_kernel(WORKFLOW)
    run_id = await tk.create_run("ai_docs", {"text": "the quick brown fox"})
    await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    (job,) = await tk.jobs.dequeue()
    await process_job(tk.kernel, job)  # `summarise` done; `shorten` not started
    run = await tk.persistence.get_run(run_id)
    assert run is not None and run.status is Status.RUNNING
    so_far = await tk.ai_calls.stats(f"workflow.{run_id}")
    assert so_far.total_calls == 2
    assert run.total_cost == pytest.approx(so_far.total_cost) and run.total_cost > 0


async def test_stage_code_can_be_tested_alone_with_recording_services() -> None:
    services = RecordingServices()
    ctx: StageContext[Doc, NoConfig, str] = StageContext(
        run_id="r", stage_id="s", input=Doc(text="x"), config=NoConfig(), services=services
    )
    await summarise(ctx)
    assert (await ctx.ai.stats()).total_calls == 2
