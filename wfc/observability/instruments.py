"""wfc's metrics, made with the OpenTelemetry metrics API (exported by OTLP, or scraped).

Names follow OpenTelemetry's conventions (dotted, units apart); the Prometheus
exporter turns them into `wfc_runs_started_total`, `wfc_stage_duration_seconds`,
`wfc_queue_depth` and so on. Attributes are kept few and bounded (workflow,
stage, outcome, queue, model): a run id on a metric would make a series per run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

if TYPE_CHECKING:
    from wfc.runtime.ai_records import AICallRecord
    from wfc.runtime.events import Event

# Stage durations run from milliseconds (a lookup) to hours (a model batch).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class QueueSample:
    """The latest depth and lag of each queue, as the worker last sampled them: gauges are
    read on the exporter's thread, which cannot query the database, so they read this."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}
        self.lag_s: dict[str, float] = {}

    def watch(self, queues: Iterable[str]) -> None:
        """Report these queues (a worker's own) from the start, as empty until sampled."""
        self.update({queue: 0 for queue in queues}, {queue: 0.0 for queue in queues})

    def update(self, depth: dict[str, int], lag_s: dict[str, float]) -> None:
        # Queues emptied since the last sample report 0, not their last value.
        self.depth = {**dict.fromkeys(self.depth, 0), **depth}
        self.lag_s = {**dict.fromkeys(self.lag_s, 0.0), **lag_s}


class Instruments:
    """The instruments of one meter, and what feeds them."""

    def __init__(self, meter: Meter) -> None:
        self.runs_started = meter.create_counter(
            "wfc.runs.started", unit="{run}", description="Runs claimed and started."
        )
        self.runs_completed = meter.create_counter(
            "wfc.runs.completed", unit="{run}", description="Runs that completed."
        )
        self.runs_failed = meter.create_counter(
            "wfc.runs.failed", unit="{run}", description="Runs that failed."
        )
        self.stage_seconds = meter.create_histogram(
            "wfc.stage.duration",
            unit="s",
            description="Wall time of stage attempts in this process, by outcome.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.ai_tokens = meter.create_counter(
            "wfc.ai.tokens", unit="{token}", description="Model tokens, input and output."
        )
        self.ai_cost = meter.create_counter(
            "wfc.ai.cost", unit="{USD}", description="What model calls cost, as priced by wfc."
        )
        self.ai_calls = meter.create_counter(
            "wfc.ai.calls", unit="{call}", description="Model calls, failed ones included."
        )
        self.queues = QueueSample()
        meter.create_observable_gauge(
            "wfc.queue.depth",
            callbacks=[self._depth],
            unit="{job}",
            description="Jobs due and waiting for a worker, per queue (sampled).",
        )
        meter.create_observable_gauge(
            "wfc.queue.lag",
            callbacks=[self._lag],
            unit="s",
            description="How long the oldest due job of each queue has waited (sampled).",
        )

    def stage_duration(
        self, seconds: float, workflow_id: str, stage_id: str, kind: str, outcome: str
    ) -> None:
        """One attempt's wall time; `kind` is execute, item (of a mapped stage) or check."""
        self.stage_seconds.record(
            seconds,
            {
                "wfc.workflow_id": workflow_id,
                "wfc.stage_id": stage_id,
                "wfc.kind": kind,
                "wfc.outcome": outcome,
            },
        )

    def ai_call(self, record: AICallRecord, *, failed: bool) -> None:
        model = {"wfc.ai.model_key": record.model_key}
        self.ai_calls.add(1, {**model, "wfc.ai.status": "error" if failed else "ok"})
        self.ai_tokens.add(record.input_tokens, {**model, "wfc.ai.token_type": "input"})
        self.ai_tokens.add(record.output_tokens, {**model, "wfc.ai.token_type": "output"})
        self.ai_cost.add(record.cost, model)

    def run_event(self, event: Event) -> None:
        """Count a run's start or end from its event, as its transaction commits."""
        counter = {
            "workflow:started": self.runs_started,
            "workflow:completed": self.runs_completed,
            "workflow:failed": self.runs_failed,
        }.get(event.type)
        if counter is not None:
            counter.add(1)

    def _depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"wfc.queue": q}) for q, n in self.queues.depth.items()]

    def _lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(s, {"wfc.queue": q}) for q, s in self.queues.lag_s.items()]
