"""Event sinks and the scheduler in memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from wfc.runtime.events import Event, parse_event
from wfc.runtime.records import JsonObject


class CollectingEventSink:
    """Keeps every delivered event; `fail_next(n)` makes the next `n` deliveries raise."""

    def __init__(self) -> None:
        self.payloads: list[JsonObject] = []
        self._failures = 0

    async def emit(self, event: JsonObject) -> None:
        if self._failures:
            self._failures -= 1
            raise RuntimeError("event sink unavailable (simulated)")
        self.payloads.append(dict(event))

    @property
    def events(self) -> list[Event]:
        """The delivered events, typed."""
        return [parse_event(p) for p in self.payloads]

    def types(self) -> list[str]:
        """The `type` of each delivered event, in order."""
        return [str(p["type"]) for p in self.payloads]

    def of_type(self, event_type: str) -> list[Event]:
        """Delivered events of one type."""
        return [e for e in self.events if e.type == event_type]

    def fail_next(self, count: int = 1) -> None:
        """Make the next `count` deliveries raise."""
        self._failures = count

    def clear(self) -> None:
        """Forget delivered events."""
        self.payloads.clear()


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledCommand:
    """A call recorded by `NoopScheduler`."""

    command_type: str
    payload: JsonObject
    run_at: datetime


class NoopScheduler:
    """A `Scheduler` that only records what it was asked to schedule."""

    def __init__(self) -> None:
        self.scheduled: list[ScheduledCommand] = []
        self.cancelled: list[tuple[str, str]] = []

    async def schedule(self, command_type: str, payload: JsonObject, run_at: datetime) -> None:
        self.scheduled.append(
            ScheduledCommand(command_type=command_type, payload=payload, run_at=run_at)
        )

    async def cancel(self, command_type: str, correlation_id: str) -> None:
        self.cancelled.append((command_type, correlation_id))
