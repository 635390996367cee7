"""`stop_signals`: SIGTERM and SIGINT ask a serving worker to stop; a second one hurries it.

Apart from the worker (`wfc.runtime.hosts.worker`) because it is the process's
side of stopping, not the worker's: installing and removing the handlers on the
running event loop, where the platform allows them (not on Windows, nor off
the main thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stop_signals(hurry: Callable[[], None]) -> Iterator[asyncio.Event]:
    """Within the block, SIGTERM or SIGINT sets the event it gives (stop, finishing the
    jobs in flight); a second one calls `hurry` too (cut the grace period short)."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()

    def on_signal() -> None:
        if stop_requested.is_set():
            hurry()
        stop_requested.set()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal)
            installed.append(signum)
    try:
        yield stop_requested
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
