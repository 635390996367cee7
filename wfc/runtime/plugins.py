"""Plugins: code that reacts to run events, delivered by `outbox.flush`.

`define_plugin(id=…, on=[event types], handle=fn)` declares one;
`PluginRunner([...])` is the `EventSink` that calls, for each event, every
plugin subscribed to its type, in registration order. A plugin that raises
makes the whole event fail: the outbox retries it later (plugins that
already handled it see it again, so handlers must be idempotent) and parks it
in the dead-letter queue after `max_retries` failures.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from wfc.runtime.events import EVENT_TYPES, Event, parse_event
from wfc.runtime.records import JsonObject

PluginHandler = Callable[[Event], Awaitable[None] | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plugin:
    """A named handler for some event types."""

    id: str
    name: str
    on: tuple[str, ...]
    handle: PluginHandler


def define_plugin(
    *, id: str, on: Iterable[str], handle: PluginHandler, name: str | None = None
) -> Plugin:
    """Declare a plugin; unknown event types are refused here, not silently never matched."""
    types = tuple(on)
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"plugin {id!r}: unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}"
        )
    return Plugin(id=id, name=name or id, on=types, handle=handle)


class PluginRunner:
    """An `EventSink` that runs plugins; `max_retries` is the outbox's DLQ threshold."""

    def __init__(self, plugins: Sequence[Plugin], *, max_retries: int = 3) -> None:
        ids = [p.id for p in plugins]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate plugin ids: {', '.join(duplicates)}")
        self.plugins = tuple(plugins)
        self.max_retries = max_retries
        # The flush marks events of other types published without reading them.
        self.event_types = frozenset(t for p in self.plugins for t in p.on)

    async def emit(self, event: JsonObject) -> None:
        subscribed = [p for p in self.plugins if event.get("type") in p.on]
        if not subscribed:
            return
        typed = parse_event(event)
        for plugin in subscribed:
            outcome = plugin.handle(typed)
            if inspect.isawaitable(outcome):
                await outcome
