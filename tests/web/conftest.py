"""The dashboard under Starlette's TestClient, over a test kernel on memory, SQLite or
PostgreSQL with a fake clock.

The app runs in the TestClient's own event loop (its portal thread); the kernel
is opened there, by the app's lifespan, and the tests create and drive runs in
that same loop through `Dashboard.call`, as the memory ports want one loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from starlette.testclient import TestClient

from tests.databases import kernel_on_storage
from tests.kernel.conftest import Script, build_workflows
from wfc.runtime.kernel import Kernel
from wfc.testing import TestKernel
from wfc.web.app import UiSettings, create_app

T = TypeVar("T")
DOC = {"text": "the quick brown fox"}
BASE = "http://127.0.0.1:8765"


@dataclass
class Dashboard:
    client: TestClient
    tk: TestKernel
    script: Script

    def call(self, work: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `work(*args)` in the app's event loop."""
        portal = self.client.portal
        assert portal is not None
        return portal.call(work, *args)

    def finished_run(self, workflow_id: str = "linear") -> str:
        return self.call(self._finished, workflow_id)

    async def _finished(self, workflow_id: str) -> str:
        return (await self.tk.run(workflow_id, DOC)).id

    def pending_run(self, workflow_id: str = "linear") -> str:
        return self.call(self.tk.create_run, workflow_id, DOC)


OpenDashboard = Callable[..., Dashboard]


@pytest.fixture
def open_dashboard(tmp_path: Path) -> Iterator[OpenDashboard]:
    """`open_dashboard(kind="memory", **settings)`: a started dashboard (stopped after)."""
    stack: list[TestClient] = []

    def start(kind: str = "memory", **settings: Any) -> Dashboard:
        script = Script()
        held: dict[str, TestKernel] = {}

        @asynccontextmanager
        async def open_kernel() -> AsyncIterator[Kernel]:
            async with kernel_on_storage(kind, build_workflows(script), tmp_path) as tk:
                held["tk"] = tk
                yield tk.kernel

        settings.setdefault("can_rerun", True)
        client = TestClient(create_app(open_kernel, UiSettings(**settings)), base_url=BASE)
        client.__enter__()
        stack.append(client)
        return Dashboard(client=client, tk=held["tk"], script=script)

    yield start
    for client in reversed(stack):
        client.__exit__(None, None, None)
