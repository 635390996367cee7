"""An OpenTelemetry observer installed for one test, exporting to memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from wfc.observability import install
from wfc.observability.otel import OtelObserver


@dataclass
class Traced:
    """What the observer exported: finished spans and metric points."""

    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    observer: OtelObserver
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of every data point of the metric `name`."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            (dict(point.attributes or {}), point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]

    def total(self, name: str, **attributes: object) -> float:
        """The sum of a counter's points whose attributes include `attributes`."""
        return sum(
            float(point.value)
            for attrs, point in self.points(name)
            if all(attrs.get(k) == v for k, v in attributes.items())
        )


@pytest.fixture
def traced() -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    observer = OtelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)
    previous = install(observer)
    try:
        yield Traced(
            spans=exporter, reader=reader, observer=observer, tracer_provider=tracer_provider
        )
    finally:
        install(previous)
        tracer_provider.shutdown()
        meter_provider.shutdown()
