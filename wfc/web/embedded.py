"""The dashboard served from inside another process: `wfc worker --ui-port`.

A small deployment runs one worker and wants to see it without a second
process. The dashboard then runs on a thread of its own with its own event
loop and its own database connections, never on the worker's loop: a slow
page cannot delay a stage, and uvicorn, off the main thread, installs no
signal handlers, so SIGTERM and Ctrl-C stay the worker's (graceful stop,
grace period, hand-back). The socket is bound before the thread starts, so a
port in use is a one-line error at start-up rather than a thread that dies
quietly. Read-only: actions stay with `wfc ui --allow-actions`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn

    from wfc.runtime.kernel import Kernel


class DashboardUnavailable(Exception):
    """The dashboard cannot be served: its extra is missing or its port is taken."""


class EmbeddedDashboard:
    """A read-only dashboard over the kernel `open_kernel` opens (on the dashboard's own
    loop, so with connections of its own), on `host:port`, on a thread of its own."""

    def __init__(
        self,
        open_kernel: Callable[[], AbstractAsyncContextManager[Kernel]],
        host: str,
        port: int,
    ) -> None:
        try:
            import uvicorn

            from wfc.web.app import UiSettings, create_app
        except ImportError:
            raise DashboardUnavailable(
                "--ui-port needs the 'ui' extra: pip install 'wfc[ui]' (Starlette and uvicorn)"
            ) from None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as error:
            self._socket.close()
            raise DashboardUnavailable(
                f"--ui-port {port}: cannot listen on {host}:{port}: {error.strerror}"
            ) from None
        app = create_app(open_kernel, UiSettings(host=host))
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server: uvicorn.Server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="wfc-ui", daemon=True)
        self.address = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the server to finish its requests and stop, and wait a little for it."""
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))
