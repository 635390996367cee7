"""One run seen through OpenTelemetry in memory: a run span, a span per stage attempt (items,
retries and checks of a suspended stage included) under it, model calls under their
attempt, and the metrics a run leaves: counted runs, stage durations, tokens and cost."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from pydantic import BaseModel

from tests.databases import kernel_on_storage
from tests.observability.conftest import Traced
from wfc.observability import incoming_trace
from wfc.plan import InputSource, MapSpec, RetryPolicy
from wfc.runtime import NotReady, Ready, Suspend, WorkflowBuilder, define_stage
from wfc.runtime.ai import ModelConfig, register_models
from wfc.runtime.records import Status
from wfc.testing import FakeClock, make_test_kernel

register_models(
    ModelConfig(
        key="traced-offline",
        model_id="test",
        input_cost_per_million=2.0,
        output_cost_per_million=8.0,
    )
)


class Text(BaseModel):
    text: str


class Batch(BaseModel):
    texts: list[Text]


class Summary(BaseModel):
    summary: str


class Length(BaseModel):
    length: int


class Done(BaseModel):
    ok: bool


flaky_calls: list[int] = []


async def ask(ctx: Any) -> Summary:
    first = await ctx.ai.generate_text("traced-offline", "Summarise these texts")
    await ctx.ai.child("check").generate_text("traced-offline", "Is it right?")
    return Summary(summary=first.text)


def measure(ctx: Any) -> Length:  # a plain `def`: it runs in a thread
    return Length(length=len(ctx.input.text))


def flaky(ctx: Any) -> Done:
    flaky_calls.append(1)
    if len(flaky_calls) == 1:
        raise ConnectionError("the first try drops")
    return Done(ok=True)


def submit(ctx: Any) -> Suspend:
    return Suspend(state={"polls": 0}, poll_interval=timedelta(seconds=5))


def check(state: dict[str, Any], ctx: Any) -> Any:
    state["polls"] += 1
    return Ready(output=Done(ok=True)) if state["polls"] >= 2 else NotReady()


def _mapped_measure() -> Any:
    stage = define_stage(id="measure", input=Text, output=Length, execute=measure)
    spec = MapSpec(over=("input", "texts"), at_most=2)
    return replace(
        stage, plan=stage.plan.model_copy(update={"map": spec, "input_source": InputSource.ITEM})
    )


WORKFLOW = (
    WorkflowBuilder("traced", "Traced", input=Batch)
    .pipe(define_stage(id="ask", input=Batch, output=Summary, execute=ask))
    .pipe(_mapped_measure())
    .pipe(
        define_stage(
            id="flaky",
            input=None,
            output=Done,
            execute=flaky,
            needs=["measure"],
            retry=RetryPolicy(max_attempts=2, backoff_initial_ms=0),
        )
    )
    .pipe(
        define_stage(
            id="wait",
            input=None,
            output=Done,
            execute=submit,
            check_completion=check,
            needs=["flaky"],
        )
    )
    .build()
)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def _run(
    traced: Traced, kind: str = "memory", tmp_path: Path | None = None
) -> tuple[Any, dict[str, list[ReadableSpan]]]:
    flaky_calls.clear()
    async with kernel_on_storage(kind, [WORKFLOW], tmp_path or Path()) as tk:
        run = await tk.run("traced", {"texts": [{"text": "abc"}, {"text": "de"}]})
    assert run.status is Status.COMPLETED, run.error
    return run, by_name(traced.finished())


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
async def test_a_run_is_one_trace_of_attempt_spans_under_its_run_span(
    traced: Traced, kind: str, tmp_path: Path
) -> None:
    """On every store: the trace context is stored with the run and read back by each
    attempt (the run as the kernel reads it), so every attempt is the run span's child."""
    run, spans = await _run(traced, kind, tmp_path)
    (root,) = spans["run traced"]
    assert root.parent is None
    assert root.attributes == {"wfc.run_id": run.id, "wfc.workflow_id": "traced"}
    assert run.trace_context is not None
    version, trace_id, span_id, _flags = run.trace_context.split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{root.context.trace_id:032x}",
        f"{root.context.span_id:016x}",
    )
    attempts = [s for s in traced.finished() if s.name.startswith(("stage ", "check "))]
    assert sorted(s.name for s in attempts) == [
        "check wait",
        "check wait",
        "stage ask",
        "stage flaky",
        "stage flaky",
        "stage measure item",
        "stage measure item",
        "stage wait",
    ]
    for span in attempts:  # every attempt, on whatever worker, is a child of the run's span
        assert span.context.trace_id == root.context.trace_id
        assert span.parent is not None and span.parent.span_id == root.context.span_id
        assert attrs(span)["wfc.run_id"] == run.id
        assert attrs(span)["wfc.workflow_id"] == "traced"
        assert attrs(span)["wfc.plan_fingerprint"] == WORKFLOW.plan.fingerprint

    flaky = sorted(spans["stage flaky"], key=lambda s: attrs(s)["wfc.attempt"])
    assert [(attrs(s)["wfc.attempt"], attrs(s)["wfc.outcome"]) for s in flaky] == [
        (1, "retrying"),
        (2, "completed"),
    ]
    assert flaky[0].status.status_code is StatusCode.ERROR
    assert "the first try drops" in (flaky[0].status.description or "")
    items = sorted(attrs(a)["wfc.item"] for a in spans["stage measure item"])
    assert items == [0, 1]
    assert [attrs(s)["wfc.outcome"] for s in spans["stage wait"]] == ["suspended"]
    checks = sorted(attrs(s)["wfc.outcome"] for s in spans["check wait"])
    assert checks == ["completed", "waiting"]


async def test_model_calls_are_children_of_their_attempt_with_tokens_and_cost(
    traced: Traced,
) -> None:
    run, spans = await _run(traced)
    (ask,) = spans["stage ask"]
    calls = spans["ai text traced-offline"]
    assert len(calls) == 2
    assert {c.parent.span_id for c in calls if c.parent} == {ask.context.span_id}
    assert {attrs(c)["wfc.ai.topic"] for c in calls} == {
        f"workflow.{run.id}.stage.ask",
        f"workflow.{run.id}.stage.ask.check",
    }
    for call in calls:
        assert attrs(call)["gen_ai.request.model"] == "test"
        assert attrs(call)["gen_ai.usage.input_tokens"] > 0
        assert call.start_time is not None and call.end_time is not None
        assert call.start_time <= call.end_time
    tokens = sum(
        attrs(c)["gen_ai.usage.input_tokens"] + attrs(c)["gen_ai.usage.output_tokens"]
        for c in calls
    )
    cost = sum(attrs(c)["wfc.ai.cost_usd"] for c in calls)
    assert attrs(ask)["wfc.tokens"] == tokens == run.total_tokens
    assert attrs(ask)["wfc.cost_usd"] == pytest.approx(cost)
    assert cost == pytest.approx(run.total_cost) and cost > 0


async def test_a_run_leaves_its_metrics(traced: Traced) -> None:
    run, _spans = await _run(traced)
    assert traced.total("wfc.runs.started") == 1
    assert traced.total("wfc.runs.completed") == 1
    assert traced.total("wfc.runs.failed") == 0
    durations = {
        (a["wfc.stage_id"], a["wfc.kind"], a["wfc.outcome"]): p.count
        for a, p in traced.points("wfc.stage.duration")
    }
    assert durations[("flaky", "execute", "retrying")] == 1
    assert durations[("flaky", "execute", "completed")] == 1
    assert durations[("measure", "item", "completed")] == 2
    assert durations[("wait", "check", "waiting")] == 1
    assert all(a["wfc.workflow_id"] == "traced" for a, _ in traced.points("wfc.stage.duration"))
    tokens = traced.total("wfc.ai.tokens", **{"wfc.ai.model_key": "traced-offline"})
    assert tokens == run.total_tokens
    assert traced.total("wfc.ai.cost") == pytest.approx(run.total_cost)
    assert traced.total("wfc.ai.calls", **{"wfc.ai.status": "ok"}) == 2


async def test_a_run_created_under_a_caller_s_span_joins_the_caller_s_trace(
    traced: Traced,
) -> None:
    tracer = trace.get_tracer("caller", tracer_provider=traced.tracer_provider)
    tk = make_test_kernel(WORKFLOW, clock=FakeClock())
    with tracer.start_as_current_span("caller") as caller:
        run_id = await tk.create_run("traced", {"texts": []})
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with incoming_trace(given):  # what `wfc runs create` does with TRACEPARENT
        other_id = await tk.create_run("traced", {"texts": []})
    spans = {attrs(s)["wfc.run_id"]: s for s in by_name(traced.finished())["run traced"]}
    under_caller, under_given = spans[run_id], spans[other_id]
    assert under_caller.parent is not None
    assert under_caller.parent.span_id == caller.get_span_context().span_id
    assert under_caller.context.trace_id == caller.get_span_context().trace_id
    assert under_given.parent is not None
    assert f"{under_given.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{under_given.parent.span_id:016x}" == "b7ad6b7169203331"
    stored = await tk.persistence.get_run(other_id)
    assert stored is not None and stored.trace_context is not None
    assert stored.trace_context.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"


def test_without_observability_a_run_imports_nothing_of_opentelemetry() -> None:
    """The no-op hook costs nothing: a whole run in a fresh interpreter, OpenTelemetry
    never imported (though installed), and a caller's TRACEPARENT still stored."""
    script = """
import asyncio, sys
from pydantic import BaseModel
from wfc.observability import incoming_trace
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.testing import make_test_kernel

class N(BaseModel):
    n: int

wf = WorkflowBuilder("plain", "Plain", input=N).pipe(
    define_stage(id="one", input=N, output=N, execute=lambda ctx: N(n=ctx.input.n + 1))
).build()

async def main():
    tk = make_test_kernel(wf)
    with incoming_trace("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
        run = await tk.run("plain", {"n": 1})
    assert run.output == {"n": 2}, run
    print(run.trace_context)
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.splitlines() == [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "[]",
    ]


async def test_a_child_run_s_trace_continues_under_the_stage_that_started_it(
    traced: Traced,
) -> None:
    from tests.kernel.children import Faults, doubler, parent

    tk = make_test_kernel(doubler(Faults()), parent(), clock=FakeClock())
    run = await tk.run("parent", {"n": 1})
    assert run.status is Status.COMPLETED, run.error
    spans = by_name(traced.finished())
    (parent_run,) = spans["run parent"]
    (child_run,) = spans["run doubler"]
    (call,) = spans["stage call"]  # the attempt that created the child
    assert call.parent is not None and call.parent.span_id == parent_run.context.span_id
    assert child_run.parent is not None and child_run.parent.span_id == call.context.span_id
    (double,) = spans["stage double"]
    assert double.parent is not None and double.parent.span_id == child_run.context.span_id
    traces = {s.context.trace_id for group in spans.values() for s in group}
    assert traces == {parent_run.context.trace_id}  # parent and child: one trace


async def test_with_tracing_off_a_caller_s_active_span_is_still_stored() -> None:
    """A program that traces itself but never turned wfc's tracing on: the run keeps the
    caller's span as its trace context, so workers that trace continue the caller's trace."""
    from opentelemetry.sdk.trace import TracerProvider

    tk = make_test_kernel(WORKFLOW, clock=FakeClock())
    tracer = TracerProvider().get_tracer("caller")
    with tracer.start_as_current_span("caller") as caller:
        run_id = await tk.create_run("traced", {"texts": []})
    without = await tk.create_run("traced", {"texts": []})
    stored = await tk.persistence.get_run(run_id)
    context = caller.get_span_context()
    assert stored is not None and stored.trace_context is not None
    assert stored.trace_context.split("-")[1:3] == [
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    ]
    plain = await tk.persistence.get_run(without)
    assert plain is not None and plain.trace_context is None


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
        (" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\n", True),
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", False),  # upper case
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),  # no trace id
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),  # no span id
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),  # other version
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01", False),  # short span id
        ("not a traceparent", False),
        ("", False),
    ],
)
async def test_only_a_valid_traceparent_is_taken(given: str, kept: bool) -> None:
    tk = make_test_kernel(WORKFLOW, clock=FakeClock())
    with incoming_trace(given) as taken:
        run_id = await tk.create_run("traced", {"texts": []})
    stored = await tk.persistence.get_run(run_id)
    assert stored is not None
    assert stored.trace_context == taken == (given.strip() if kept else None)
