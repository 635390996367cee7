"""The OpenTelemetry observer: a trace per run, a span per stage attempt, model calls in them.

Every run gets a trace context when it is created (`run_trace_context`): a
short `run <workflow>` span, a child of the caller's span when there is one,
whose traceparent is stored with the run. Whichever worker then runs a stage
attempt, in whichever process, starts the attempt's span under that stored
context, so all the attempts of a run are children of one span in one trace.
A run stored without a context (made while tracing was off) still gets one
trace: its trace id is derived from the run id, the same in every process.

A model call is recorded after it returned (the ledger entry says how long it
took), so its span is made then, with its real start time, as a child of the
attempt whose ledger topic it was written under: found by topic rather than by
the active context, because a plain `def` stage's calls are recorded from the
event loop, not from the stage's thread.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from wfc.observability import (
    CURRENT_ATTEMPT,
    Attempt,
    Observer,
    active_traceparent,
    incoming_traceparent,
)
from wfc.observability.instruments import Instruments
from wfc.runtime.stage import stage_topic

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from wfc.runtime.ai_records import AICallRecord
    from wfc.runtime.commands import JobExecute
    from wfc.runtime.events import Event
    from wfc.runtime.records import RunRecord

SCOPE = "wfc"
_PROPAGATOR = TraceContextTextMapPropagator()


def traceparent_of(span_context: SpanContext) -> str:
    """The W3C traceparent naming `span_context`."""
    flags = int(span_context.trace_flags)
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"


def run_parent(run: RunRecord) -> otel_context.Context:
    """The context a run's attempt spans start under: the one stored with the run, else a
    remote parent derived from the run id (one trace per run in every process)."""
    if run.trace_context:
        return _PROPAGATOR.extract({"traceparent": run.trace_context})
    digest = hashlib.sha256(run.id.encode()).digest()
    derived = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(derived))


class OtelObserver(Observer):
    """Spans and metrics through the OpenTelemetry API (the globally set providers unless
    given: tests pass their own in-memory ones)."""

    enabled = True

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self.instruments = Instruments(metrics.get_meter(SCOPE, meter_provider=meter_provider))
        # The attempts in progress in this process by ledger topic, for their model calls.
        self._by_topic: dict[str, _OtelAttempt] = {}

    def stage_attempt(self, cmd: JobExecute) -> Attempt:
        return _OtelAttempt(self, cmd.workflow_id, cmd.stage_id, cmd.attempt, "execute")

    def stage_check(self, run: RunRecord, stage_id: str, attempt: int) -> Attempt:
        check = _OtelAttempt(self, run.workflow_id, stage_id, attempt, "check")
        check.opened(run)
        return check

    def run_trace_context(self, run_id: str, workflow_id: str) -> str | None:
        incoming = incoming_traceparent()
        parent = _PROPAGATOR.extract({"traceparent": incoming}) if incoming else None
        span = self.tracer.start_span(
            f"run {workflow_id}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={"wfc.run_id": run_id, "wfc.workflow_id": workflow_id},
        )
        span.end()
        made = span.get_span_context()
        # A span the sampler dropped has no context of its own: keep the caller's.
        return traceparent_of(made) if made.is_valid else incoming or active_traceparent()

    def committed(self, events: Sequence[Event]) -> None:
        for event in events:
            self.instruments.run_event(event)

    def ai_call(self, record: AICallRecord) -> None:
        failed = record.metadata.get("status") == "error"
        self.instruments.ai_call(record, failed=failed)
        owner = self._owner(record.topic)
        if owner is None:
            return
        owner.add_usage(record)
        took = record.metadata.get("duration_ms")
        end = time.time_ns()
        start = end - int(float(took) * 1_000_000) if isinstance(took, int | float) else end
        span = self.tracer.start_span(
            f"ai {record.call_type} {record.model_key}",
            context=owner.context,
            kind=SpanKind.CLIENT,
            start_time=start,
            attributes={
                "gen_ai.request.model": record.model_id,
                "gen_ai.usage.input_tokens": record.input_tokens,
                "gen_ai.usage.output_tokens": record.output_tokens,
                "wfc.ai.model_key": record.model_key,
                "wfc.ai.call_type": record.call_type,
                "wfc.ai.cost_usd": record.cost,
                "wfc.ai.topic": record.topic,
            },
        )
        if failed:
            span.set_status(Status(StatusCode.ERROR, str(record.metadata.get("error", ""))))
        span.end(end_time=end)

    def _owner(self, topic: str) -> _OtelAttempt | None:
        """The attempt in progress whose topic is `topic` or the nearest one above it."""
        while topic:
            found = self._by_topic.get(topic)
            if found is not None:
                return found
            topic = topic.rpartition(".")[0]
        return None

    def _track(self, topic: str, attempt: _OtelAttempt | None) -> None:
        if attempt is None:
            self._by_topic.pop(topic, None)
        else:
            self._by_topic[topic] = attempt


class _OtelAttempt(Attempt):
    """One `job.execute` as a span. The span starts when the kernel has read the run (its
    parent is the run's stored context), with the time the attempt began as its start."""

    def __init__(
        self, observer: OtelObserver, workflow_id: str, stage_id: str, attempt: int, kind: str
    ) -> None:
        self.observer = observer
        self.workflow = workflow_id
        self.stage_id = stage_id
        self.attempt = attempt
        self.kind = kind
        self.began = time.time_ns()
        self.clock = time.perf_counter()
        self.span: Span | None = None
        self.context: otel_context.Context | None = None
        self.topic: str | None = None
        self.outcome = "failed"
        self.tokens = 0
        self.cost = 0.0
        self._var_token: Token[Attempt | None] | None = None
        self._context_token: object = None

    def __enter__(self) -> Attempt:
        self._var_token = CURRENT_ATTEMPT.set(self)
        return self

    def opened(self, run: RunRecord, item: int | None = None) -> None:
        if self.span is not None:
            return
        attributes: dict[str, str | int] = {
            "wfc.run_id": run.id,
            "wfc.workflow_id": run.workflow_id,
            "wfc.plan_fingerprint": run.plan_fingerprint,
            "wfc.stage_id": self.stage_id,
            "wfc.attempt": self.attempt,
            "wfc.kind": self.kind,
        }
        if item is not None:
            attributes["wfc.item"] = item
            self.kind = "item"
        verb = "check" if self.kind == "check" else "stage"
        self.span = self.observer.tracer.start_span(
            f"{verb} {self.stage_id}" + ("" if item is None else " item"),
            context=run_parent(run),
            kind=SpanKind.INTERNAL,
            start_time=self.began,
            attributes={**attributes, "wfc.kind": self.kind},
        )
        self.context = trace.set_span_in_context(self.span)
        # Current while the body runs: a child run it starts joins this trace under it.
        self._context_token = otel_context.attach(self.context)
        self.topic = stage_topic(run.id, self.stage_id)
        if item is not None:
            self.topic += f".item.{item}"
        self.observer._track(self.topic, self)

    def add_usage(self, record: AICallRecord) -> None:
        self.tokens += record.input_tokens + record.output_tokens
        self.cost += record.cost

    def ended(self, outcome: str, error: str | None = None) -> None:
        self.outcome = outcome
        if self.span is not None and error and outcome not in ("completed", "waiting"):
            self.span.set_status(Status(StatusCode.ERROR, error[:500]))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is not None:
            self.outcome = "error"
        if self._context_token is not None:
            otel_context.detach(self._context_token)  # type: ignore[arg-type]
        if self._var_token is not None:
            CURRENT_ATTEMPT.reset(self._var_token)
        self.observer.instruments.stage_duration(
            time.perf_counter() - self.clock, self.workflow, self.stage_id, self.kind, self.outcome
        )
        if self.span is None:
            return
        if self.topic is not None:
            self.observer._track(self.topic, None)
        self.span.set_attributes(
            {"wfc.outcome": self.outcome, "wfc.tokens": self.tokens, "wfc.cost_usd": self.cost}
        )
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self.span.end()
