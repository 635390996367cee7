"""The observability hook: the few points where wfc says what it is doing, and nobody listening.

The kernel and the AI helper call this module where a stage attempt starts and
finishes, where a run is created and where a model call is recorded. By default
the installed `Observer` is this module's no-op one: every call returns at once
and nothing of OpenTelemetry is imported, so a worker without the `wfc[otel]`
extra, or with tracing off, pays a method call per stage and nothing more.
`wfc worker --otel` (`wfc.observability.setup`) installs the OpenTelemetry one
(`wfc.observability.otel`) in its place.

The hook stays this small on purpose: other parts of wfc change often, so what
they call is one line each (`observer().stage_attempt(cmd)`, `attempt_opened(run)`,
`observer().ai_call(record)`, `observer().run_trace_context(...)`), and what
a trace or a metric is made of lives behind it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wfc.runtime.ai_records import AICallRecord
    from wfc.runtime.commands import JobExecute, JobExecuteResult
    from wfc.runtime.events import Event
    from wfc.runtime.records import RunRecord

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""A W3C `traceparent` of version 00, the form a run's trace context is stored in."""

_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def valid_traceparent(value: str | None) -> str | None:
    """`value` when it is a usable W3C traceparent (lower-case, ids not all zero), else
    None: a caller's malformed header must not end up stored with a run."""
    if value is None:
        return None
    found = TRACEPARENT.fullmatch(value.strip())
    if found is None or found[1] == _ZERO_TRACE or found[2] == _ZERO_SPAN:
        return None
    return found[0]


class Attempt:
    """One stage attempt as the observer follows it; this one follows nothing."""

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def opened(self, run: RunRecord, item: int | None = None) -> None:
        """The attempt's run is known (read, and the attempt may run)."""

    def ended(self, outcome: str, error: str | None = None) -> None:
        """How the attempt ended (`outcome_of`), before it leaves its `with` block."""

    def finished(self, result: JobExecuteResult) -> None:
        """What a `job.execute` attempt ended with."""
        self.ended(outcome_of(result), result.error)


def outcome_of(result: JobExecuteResult) -> str:
    """One word for how an execution ended: completed, suspended, retrying, failed or ghost
    (its result was discarded: the run stopped, or another delivery owns the stage)."""
    if result.ghost:
        return "ghost"
    if result.outcome == "failed" and result.retry_at is not None:
        return "retrying"
    return result.outcome


NO_ATTEMPT = Attempt()

CURRENT_ATTEMPT: ContextVar[Attempt | None] = ContextVar("wfc_attempt", default=None)
_incoming: ContextVar[str | None] = ContextVar("wfc_incoming_traceparent", default=None)


class Observer:
    """What wfc tells about its work. This base is the no-op hook every process starts with."""

    enabled = False

    def stage_attempt(self, cmd: JobExecute) -> Attempt:
        """A context manager around one `job.execute` of `cmd`."""
        return NO_ATTEMPT

    def stage_check(self, run: RunRecord, stage_id: str, attempt: int) -> Attempt:
        """A context manager around one check of a suspended stage (`check_completion`)."""
        return NO_ATTEMPT

    def ai_call(self, record: AICallRecord) -> None:
        """A model call was written to the ledger."""

    def committed(self, events: Sequence[Event]) -> None:
        """A transaction committed with these events (runs started and ended are counted
        here, where they happen once, not where the outbox delivers them: at least once)."""

    def run_trace_context(self, run_id: str, workflow_id: str) -> str | None:
        """The trace context to store with a run being created (a W3C traceparent), which
        the spans of its stages join on whatever worker runs them.

        Tracing off, it is still the caller's when there is one: the traceparent given
        to `incoming_trace` (`wfc runs create` reads `TRACEPARENT`), or the active span
        of a caller that uses OpenTelemetry itself (looked up only if that program
        imported it already), so a worker with tracing on continues the caller's trace.
        """
        return _incoming.get() or active_traceparent()


def active_traceparent() -> str | None:
    """The traceparent of the active OpenTelemetry span, if this program has one."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


_observer: Observer = Observer()


def observer() -> Observer:
    """The installed observer (the no-op one unless observability was set up)."""
    return _observer


def install(new: Observer | None) -> Observer:
    """Install `new` (None: the no-op observer again); returns the one it replaces."""
    global _observer
    previous, _observer = _observer, new or Observer()
    return previous


def attempt_opened(run: RunRecord, item: int | None = None) -> None:
    """Tell the attempt in progress in this task that its run is `run` (and its map
    `item`): called where the kernel has read the run, so no extra read is made for it."""
    attempt = CURRENT_ATTEMPT.get()
    if attempt is not None:
        attempt.opened(run, item)


@contextmanager
def incoming_trace(traceparent: str | None) -> Iterator[str | None]:
    """Runs created in this block join the trace of `traceparent` (ignored unless it is a
    valid W3C traceparent); yields the one taken."""
    taken = valid_traceparent(traceparent)
    token = _incoming.set(taken)
    try:
        yield taken
    finally:
        _incoming.reset(token)


def incoming_traceparent() -> str | None:
    """The traceparent given to the enclosing `incoming_trace`, if any."""
    return _incoming.get()
