"""What users import to test their own workflows: memory ports, a fake clock, a test kernel.

```python
async def test_my_workflow():
    tk = make_test_kernel(my_pkg.workflow)
    run = await tk.run("my_workflow", {"document": "…"})
    assert run.status is Status.COMPLETED
```
"""

from __future__ import annotations

from wfc.runtime.adapters.memory import (
    CollectingEventSink,
    FakeClock,
    MemoryAICallLogger,
    MemoryBlobStore,
    MemoryJobTransport,
    MemoryPersistence,
    NoopScheduler,
    SequentialIds,
)
from wfc.runtime.ports import Storage
from wfc.testing.harness import MemoryStorage, TestKernel, drive, make_test_kernel, work
from wfc.testing.taker import SlotTaker

__all__ = [
    "CollectingEventSink",
    "FakeClock",
    "MemoryAICallLogger",
    "MemoryBlobStore",
    "MemoryJobTransport",
    "MemoryPersistence",
    "MemoryStorage",
    "NoopScheduler",
    "SequentialIds",
    "SlotTaker",
    "Storage",
    "TestKernel",
    "drive",
    "make_test_kernel",
    "work",
]
