"""Two real `wfc worker --otel` processes on one SQLite file, exporting OTLP over HTTP to a
collector in this test, and serving /metrics: the stage spans of a run, made in two
processes, share one trace and one parent (the caller's span given as TRACEPARENT to
`wfc runs create`), and the scraped metrics count what the workers did."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.workers import environment, free_port, start_worker, stop, wait_until, wfc
from wfc.compiler import compile_path
from wfc.runtime.adapters.sql import open_storage
from wfc.runtime.records import RunRecord, Status

FANOUT = """
workflow fanout {
  input { n: int }
  output { n: int }

  stage first { input { n: int } output { n: int } }
  stage a { input none needs first output { n: int } }
  stage b { input none needs first output { n: int } }
  stage c { input none needs first output { n: int } }
  stage d { input none needs first output { n: int } }
  stage last { input none needs a, b, c, d output { n: int } }

  flow first -> [a, b, c, d] -> last
}
"""

STAGE = '''"""Stage `{stage}`: a moment's work, so parallel siblings go to both workers."""

from __future__ import annotations

import time

from .._models import {cls}Output
from .._stages import {cls}Context, {cls}Stage


class {cls}({cls}Stage):
    def execute(self, ctx: {cls}Context) -> {cls}Output:
        time.sleep(0.3)
        return {cls}Output(n=1)
'''

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
STAGES = ("first", "a", "b", "c", "d", "last")


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    worker: str
    attributes: dict[str, Any]


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver on loopback keeping the spans it is sent (metrics accepted
    and dropped: the test reads them from /metrics)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.spans: list[ExportedSpan] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {
                        a.key: a.value.string_value or a.value.int_value for a in span.attributes
                    }
                    with self.lock:
                        self.spans.append(
                            ExportedSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                worker=resource.get("service.instance.id", ""),
                                attributes=attributes,
                            )
                        )


class _Receive(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/traces":
            self.server.keep(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def fanout_package(directory: Path) -> Path:
    source = directory / "fanout.wf"
    source.write_text(FANOUT)
    result = compile_path(source)
    assert result.ok and result.out_dir is not None, result.diagnostics
    for stage in STAGES:
        stub = result.out_dir / "stages" / f"{stage}.py"
        stub.write_text(STAGE.format(stage=stage, cls=stage.capitalize()))
    return result.out_dir


def runs_in(url: str) -> list[RunRecord]:
    async def read() -> list[RunRecord]:
        storage = open_storage(url)
        try:
            return await storage.persistence.list_runs(limit=100)
        finally:
            await storage.close()

    return asyncio.run(read())


def scrape(port: int) -> dict[str, float]:
    """`/metrics` as {series with labels: value}, comments left out."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    series: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    return series


def values(scraped: dict[str, float], name: str, *labels: str) -> list[float]:
    """The values of the series `name` whose labels include `labels`."""
    return [
        value
        for series, value in scraped.items()
        if series.split("{")[0] == name and all(label in series for label in labels)
    ]


def summed(scrapes: list[dict[str, float]], name: str, *labels: str) -> float:
    """The sum over every worker of the series `name` whose labels include `labels`."""
    return sum(sum(values(scraped, name, *labels)) for scraped in scrapes)


def test_two_workers_put_a_run_s_stage_spans_in_one_trace_and_count_it(
    tmp_path: Path, collector: Collector
) -> None:
    package = fanout_package(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'wfc.db'}"
    ports = [free_port(), free_port()]
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        # Spans leave only when a worker stops: what it still holds must be sent then.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_SERVICE_NAME": "wfc-e2e",
    }
    workers = []
    for n, port in enumerate(ports):
        env = environment(url, tmp_path / "ledger", **otel)
        env["OTEL_RESOURCE_ATTRIBUTES"] = f"service.instance.id=w{n}"
        # One worker is switched on by the flag, the other by the environment.
        switch = ("--otel",) if n == 0 else ()
        if n == 1:
            env["WFC_OTEL"] = "1"
        workers.append(
            start_worker(
                package,
                env,
                tmp_path,
                tmp_path / f"worker{n}.log",
                *switch,
                "--worker-id",
                f"w{n}",
                "--poll-interval",
                "0.1",
                "--metrics-port",
                str(port),
                "--metrics-host",
                "127.0.0.1",
            )
        )
    plain_env = environment(url, tmp_path / "ledger")
    traced_env = {**plain_env, "TRACEPARENT": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    try:
        created = [
            wfc("runs", "create", "fanout", "--plan", str(package), "--input", '{"n": 1}',
                env=traced_env if n < 3 else plain_env, cwd=tmp_path)
            for n in range(4)
        ]  # fmt: skip
        assert all(c.returncode == 0 for c in created), [c.stderr for c in created]
        traced_runs = [c.stdout.strip() for c in created[:3]]
        plain_run = created[3].stdout.strip()
        wait_until(
            lambda: [r.status for r in runs_in(url)] == [Status.COMPLETED] * 4,
            timeout=120,
            what="4 runs to complete",
        )
        scraped = wait_until(
            lambda: (
                (s := [scrape(p) for p in ports])
                and summed(s, "wfc_runs_completed_total") == 4
                # The queue gauges are sampled every few seconds: wait for a sample
                # taken after the last job left the queue.
                and all(values(x, "wfc_queue_depth", 'wfc_queue="default"') == [0] for x in s)
                and s
            ),
            timeout=60,
            what="both workers' /metrics to count 4 completed runs and an empty queue",
        )
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]
    assert summed(scraped, "wfc_runs_started_total") == 4
    assert summed(scraped, "wfc_runs_failed_total") == 0
    done = ('wfc_kind="execute"', 'wfc_outcome="completed"')
    assert summed(scraped, "wfc_stage_duration_seconds_count", *done) == 4 * len(STAGES)
    assert summed(scraped, "wfc_stage_duration_seconds_count", 'wfc_stage_id="a"') == 4
    # Each worker samples its queue; nothing is left waiting once the runs are done.
    for name in ("wfc_queue_depth", "wfc_queue_lag_seconds"):
        assert [values(s, name, 'wfc_queue="default"') for s in scraped] == [[0], [0]], name

    stage_spans = [s for s in collector.spans if s.name.startswith("stage ")]
    by_run: dict[str, list[ExportedSpan]] = {}
    for span in stage_spans:
        by_run.setdefault(span.attributes["wfc.run_id"], []).append(span)
    assert sorted(by_run) == sorted([*traced_runs, plain_run])
    for run_id, spans in by_run.items():
        assert sorted(s.name for s in spans) == sorted(f"stage {s}" for s in STAGES)
        assert len({s.trace_id for s in spans}) == 1, run_id
        assert len({s.parent_id for s in spans}) == 1, run_id
    for run_id in traced_runs:  # the caller's span is every stage's parent
        assert {(s.trace_id, s.parent_id) for s in by_run[run_id]} == {(CALLER_TRACE, CALLER_SPAN)}
    (plain,) = {s.trace_id for s in by_run[plain_run]}  # a trace of its own, not the caller's
    assert plain != CALLER_TRACE
    # Spans of one run came from both processes: the trace context travelled with the run.
    assert any(len({s.worker for s in spans}) == 2 for spans in by_run.values()), [
        sorted(s.worker for s in spans) for spans in by_run.values()
    ]
    assert {s.worker for s in stage_spans} == {"w0", "w1"}
