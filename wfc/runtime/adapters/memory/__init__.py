"""In-memory adapters for every port: fast, inspectable, and held to the same conformance suite."""

from __future__ import annotations

from wfc.runtime.adapters.memory.ai_calls import MemoryAICallLogger
from wfc.runtime.adapters.memory.blobs import MemoryBlobStore
from wfc.runtime.adapters.memory.clock import FakeClock, SequentialIds, SystemClock, UuidIds
from wfc.runtime.adapters.memory.events import CollectingEventSink, NoopScheduler, ScheduledCommand
from wfc.runtime.adapters.memory.jobs import MemoryJobTransport
from wfc.runtime.adapters.memory.persistence import MemoryPersistence
from wfc.runtime.adapters.memory.pinning import NoPinning

__all__ = [
    "CollectingEventSink",
    "FakeClock",
    "MemoryAICallLogger",
    "MemoryBlobStore",
    "MemoryJobTransport",
    "MemoryPersistence",
    "NoPinning",
    "NoopScheduler",
    "ScheduledCommand",
    "SequentialIds",
    "SystemClock",
    "UuidIds",
]
