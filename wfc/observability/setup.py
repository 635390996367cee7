"""Turning observability on in a process: SDK providers, exporters, `/metrics`, the hook.

`configure()` is what `wfc worker --otel` and `--metrics-port` call. The
standard OpenTelemetry environment variables apply as in any instrumented
program (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL` is
http/protobuf, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`, and
`OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` set to `otlp`, `console` or
`none`): wfc reads none of them itself but leaves them to the SDK, so an
operator's habits carry over.

Everything of OpenTelemetry is imported inside `configure`: the CLI stays
light, and a process that never turns observability on never imports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfc.errors import WfcError
from wfc.observability import install

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from wfc.observability.otel import OtelObserver

DEFAULT_SERVICE_NAME = "wfc-worker"
EXPORTERS = ("otlp", "console", "none")


class ObservabilityUnavailable(WfcError):
    """Observability was asked for, but the `wfc[otel]` extra is not installed."""


@dataclass(slots=True, kw_only=True)
class Telemetry:
    """Observability as configured in this process; `shutdown()` flushes what is buffered."""

    observer: OtelObserver
    tracer_provider: TracerProvider | None
    meter_provider: MeterProvider
    metrics_server: Any = None  # prometheus_client's WSGI server, when /metrics is served
    metrics_port: int | None = None
    _shut: bool = field(default=False)

    def shutdown(self) -> None:
        """Export what is still buffered, stop `/metrics` and put the no-op hook back."""
        if self._shut:
            return
        self._shut = True
        install(None)
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _exporter_choice(variable: str) -> str:
    chosen = os.environ.get(variable, "otlp").strip().lower() or "otlp"
    if chosen not in EXPORTERS:
        raise ObservabilityUnavailable(
            f"{variable}={chosen!r}: wfc supports {', '.join(EXPORTERS)}"
        )
    return chosen


def _resource(service_name: str) -> Resource:
    from opentelemetry.sdk.resources import Resource

    # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins over wfc's default.
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return Resource.create({} if named else {"service.name": service_name})


def _tracer_provider(resource: Resource) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=resource)
    chosen = _exporter_choice("OTEL_TRACES_EXPORTER")
    if chosen == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif chosen == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def _metric_readers(otlp: bool) -> list[MetricReader]:
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    chosen = _exporter_choice("OTEL_METRICS_EXPORTER") if otlp else "none"
    if chosen == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return [PeriodicExportingMetricReader(OTLPMetricExporter())]
    if chosen == "console":
        return [PeriodicExportingMetricReader(ConsoleMetricExporter())]
    return []


def configure(
    *,
    traces: bool,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    service_name: str = DEFAULT_SERVICE_NAME,
) -> Telemetry:
    """Set up the SDK and install the OpenTelemetry observer.

    `traces`: spans and metrics go to the configured exporters (OTLP unless the
    environment says otherwise). `metrics_port`: the metrics are also served for
    Prometheus at `http://<metrics_host>:<port>/metrics` (port 0 picks a free one,
    which `Telemetry.metrics_port` tells). The providers are also made global,
    so stage code that uses OpenTelemetry itself exports through them.
    """
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError as error:
        raise ObservabilityUnavailable(
            f"OpenTelemetry is not installed ({error.name} is missing): pip install 'wfc[otel]'"
        ) from None
    from wfc.observability.otel import OtelObserver

    resource = _resource(service_name)
    readers = _metric_readers(traces)
    server, port = None, None
    if metrics_port is not None:
        reader, server, port = _prometheus(metrics_host, metrics_port)
        readers.append(reader)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    tracer_provider = _tracer_provider(resource) if traces else None
    metrics.set_meter_provider(meter_provider)
    if tracer_provider is not None:
        trace.set_tracer_provider(tracer_provider)
    observer = OtelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)
    install(observer)
    return Telemetry(
        observer=observer,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        metrics_server=server,
        metrics_port=port,
    )


def _prometheus(host: str, port: int) -> tuple[MetricReader, Any, int]:
    """A reader serving the metrics at `/metrics`, on its own registry (not the process's
    global one, so two readers in one process never clash), its server and its port."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError as error:
        raise ObservabilityUnavailable(
            f"the Prometheus exporter is not installed ({error.name} is missing): "
            "pip install 'wfc[otel]'"
        ) from None
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise ObservabilityUnavailable(
            f"cannot serve /metrics on {host}:{port}: {error.strerror or error}"
        ) from None
    return reader, server, int(server.server_port)
