"""What the browser tests stand on: the real dashboard served by uvicorn on a free port over
a SQLite file, a kernel (and a worker, when asked) working on the same file from another
event loop, and headless Chromium.

Debian's chromium is driven through Playwright's Python package (`playwright install`
would download a browser of its own). Without it the browser tests skip, unless `CI` is
set: then its absence fails them, so CI cannot pass by running none.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from tests.e2e.workers import free_port
from tests.kernel.conftest import Script, build_workflows
from wfc.runtime.adapters.sql import SqlStorage, open_storage
from wfc.runtime.hosts import make_kernel
from wfc.runtime.kernel import Kernel
from wfc.runtime.registry import WorkflowMap
from wfc.web.app import UiSettings, create_app

T = TypeVar("T")
CHROMIUM = os.environ.get("WFC_CHROMIUM", "/usr/bin/chromium")


def chromium_or_skip() -> str:
    """The chromium binary; a skip without it (a failure under CI)."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        why = (
            "headless Chromium is needed: apt-get install -y chromium (and pip install playwright)"
        )
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return found


class Backdrop:
    """An event loop in a thread with its own kernel on the database: it creates runs and
    works them while the browser looks, as another process would."""

    def __init__(self, url: str, script: Script) -> None:
        self.url = url
        self.registry = WorkflowMap(build_workflows(script))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.storage: SqlStorage = self.call(self._open())
        self.kernel: Kernel = make_kernel(self.storage, self.registry)

    async def _open(self) -> SqlStorage:
        storage = open_storage(self.url)
        await storage.create_schema()
        return storage

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.call(self.storage.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Served:
    """`wfc ui`'s app under uvicorn in a thread, on 127.0.0.1 and a free port."""

    def __init__(self, url: str, registry: WorkflowMap, settings: UiSettings) -> None:
        @asynccontextmanager
        async def open_kernel() -> AsyncIterator[Kernel]:
            storage = open_storage(url)
            try:
                yield make_kernel(storage, registry)
            finally:
                await storage.close()

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(open_kernel, settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
