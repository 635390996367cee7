"""Tracing's cost: CPU per stage attempt with OpenTelemetry on, off, and not installed.

Run: `.venv/bin/python benchmarks/tracing.py` (about a minute; `--runs`, `--stages`,
`--repeats` change it). Reported, never asserted.

Each mode runs in a fresh interpreter of this script (`tracing.py mode MODE ...`), so
one mode's imports and providers never colour another's:

- `absent`: `opentelemetry` cannot be imported (blocked in `sys.modules`), what a
  worker without the `wfc[otel]` extra is; the hook is the no-op one.
- `off`: OpenTelemetry installed, observability not turned on (the no-op hook): the
  default `wfc worker`.
- `on`: the OpenTelemetry observer with the SDK's providers as `wfc worker --otel`
  sets them up (a `BatchSpanProcessor`, a metric reader), exporting to an exporter
  that drops what it is given, so the figure is wfc's and the SDK's work, not a
  network's.

RUNS runs of a workflow of STAGES plain stages that return at once are driven to
their end on the in-memory kernel (`wfc.testing`), after a warm-up run, and the
process's CPU time (`time.process_time`, user + system, all threads: the batch
processor's included) is divided by the stage attempts made. The memory kernel does
the least work a stage can cost, so the difference between modes is the largest
share tracing can take of a stage; on SQLite or PostgreSQL a stage costs far more.
On a loaded machine that difference drowns in noise, so each child also times the
hook alone (`_hook_cost`): ten times as many attempts through the hook as
`job.execute` makes them (enter, told the run, told the result, exit), without the
kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

MODES = ("absent", "off", "on")


def _workflow(stages: int) -> Any:
    from pydantic import BaseModel

    from wfc.runtime import WorkflowBuilder, define_stage

    class N(BaseModel):
        n: int

    def bump(ctx: Any) -> N:
        return N(n=ctx.input.n + 1)

    builder = WorkflowBuilder("traced_bench", "Tracing bench", input=N)
    for index in range(stages):
        builder = builder.pipe(define_stage(id=f"s{index}", input=N, output=N, execute=bump))
    return builder.build()


def _turn_on() -> Any:
    """The observer as `configure(traces=True)` sets it up, with exporters that drop."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from wfc.observability import install
    from wfc.observability.otel import OtelObserver

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 0, **_: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **_: Any) -> None:
            return None

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1000)
    meter_provider = MeterProvider(metric_readers=[reader])
    install(OtelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider))
    return tracer_provider, meter_provider


async def _measure(mode: str, runs: int, stages: int) -> dict[str, Any]:
    from wfc.testing import FakeClock, make_test_kernel

    providers = _turn_on() if mode == "on" else None
    kernel = make_test_kernel(_workflow(stages), clock=FakeClock())
    await kernel.run("traced_bench", {"n": 0})  # warm-up: imports, caches
    started, wall = time.process_time(), time.perf_counter()
    for n in range(runs):
        run = await kernel.run("traced_bench", {"n": n})
        assert run.output == {"n": n + stages}, run
    cpu, elapsed = time.process_time() - started, time.perf_counter() - wall
    hook = _hook_cost(runs * stages * 10)
    if providers is not None:
        for provider in providers:
            provider.shutdown()
    loaded = [m for m, module in sys.modules.items() if m.startswith("opentelemetry") and module]
    return {
        "mode": mode,
        "cpu_us_per_stage": round(cpu / (runs * stages) * 1e6, 1),
        "wall_us_per_stage": round(elapsed / (runs * stages) * 1e6, 1),
        "hook_us_per_attempt": round(hook * 1e6, 2),
        "opentelemetry_imported": bool(loaded),
    }


def _hook_cost(attempts: int) -> float:
    """CPU seconds per attempt of the hook alone, as `job.execute` calls it: the attempt's
    `with` block, told its run and its result (the kernel's own work left out)."""
    from datetime import UTC, datetime

    from wfc.observability import attempt_opened, observer
    from wfc.runtime.commands import JobExecute, JobExecuteResult
    from wfc.runtime.records import RunRecord, Status

    now = datetime(2026, 1, 1, tzinfo=UTC)
    run = RunRecord(
        id="run-1", workflow_id="w", workflow_name="W", plan_fingerprint="sha256:x",
        status=Status.RUNNING, input={}, config={}, priority=0, created_at=now, updated_at=now,
    )  # fmt: skip
    cmd = JobExecute(workflow_run_id=run.id, workflow_id="w", stage_id="s", attempt=1)
    result = JobExecuteResult(outcome="completed", output={"n": 1})
    started = time.process_time()
    for _ in range(attempts):
        with observer().stage_attempt(cmd) as attempt:
            attempt_opened(run)
            attempt.finished(result)
    return (time.process_time() - started) / attempts


def _child(mode: str, runs: int, stages: int) -> None:
    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails
    print(json.dumps(asyncio.run(_measure(mode, runs, stages))), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--stages", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[1], args.runs, args.stages)
        return
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):  # interleaved, so a busy minute hits every mode
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--runs", str(args.runs), "--stages",
                 str(args.stages), "mode", mode],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            results[mode].append(json.loads(out.splitlines()[-1]))
    print(f"{args.runs} runs x {args.stages} stages, median of {args.repeats}, memory kernel")
    print("| mode | CPU µs per stage | wall µs per stage | hook alone, CPU µs per attempt "
          "| opentelemetry imported |")  # fmt: skip
    print("|---|---|---|---|---|")
    for mode in MODES:
        cpu = statistics.median(r["cpu_us_per_stage"] for r in results[mode])
        wall = statistics.median(r["wall_us_per_stage"] for r in results[mode])
        hook = statistics.median(r["hook_us_per_attempt"] for r in results[mode])
        imported = {r["opentelemetry_imported"] for r in results[mode]}
        shown = "yes" if True in imported else "no"
        print(f"| {mode} | {cpu:.0f} | {wall:.0f} | {hook:.2f} | {shown} |")


if __name__ == "__main__":
    main()
