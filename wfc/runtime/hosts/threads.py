"""`StageThreads`: the thread pool a worker runs plain `def` stage code in, which knows
which of its threads were given up on.

Python cannot stop a thread. When a stage's timeout expires, or its run ends
under it, the kernel stops waiting for the stage's thread, but the thread runs
on until the stage code returns, perhaps never. In asyncio's default pool (a few
threads per CPU) a handful of such threads left every later stage queued
behind them until it timed out too, while the worker went on heartbeating as if
healthy. A worker installs this pool instead (`loop.set_default_executor`), sized
for its slots plus the threads it may lose, and counts what it lost: a thread
whose caller cancelled its wait while it ran is abandoned until it returns.

`install_stage_threads` is how a worker uses it: it says on the worker's log
each time the count changes, and past the worker's limit has it give up (stop
leasing and stop as on SIGTERM) so that a supervisor starts a fresh process.
That policy lives here rather than in `WorkerHost` because it is about the
pool alone: the worker only hands over its limit and how to give up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("wfc.worker")

MAX_ABANDONED_THREADS = 4
SPARE_THREADS = 4  # beyond slots and abandoned threads: asyncio's DNS lookups use the pool too


class _Watched(Future[Any]):
    """The future handed to the caller, mirroring the pool's own; cancelling it while the
    call runs marks the thread abandoned instead of failing silently."""

    def __init__(self, pool: StageThreads) -> None:
        super().__init__()
        self._pool = pool
        self.inner: Future[Any] | None = None

    def cancel(self) -> bool:
        inner = self.inner
        if inner is None or inner.cancel():  # not started yet: it never will
            return super().cancel()
        if not inner.done():
            self._pool._abandon(self)
        return False

    def settle(self, inner: Future[Any]) -> None:
        self._pool._returned(self)
        if inner.cancelled():
            super().cancel()
            return
        if self.done():
            return
        error = inner.exception()
        if error is not None:
            self.set_exception(error)
        else:
            self.set_result(inner.result())


class StageThreads(ThreadPoolExecutor):
    """A thread pool that counts its abandoned threads (calls whose waiter gave up while
    they ran) and tells `on_change` when that count changes."""

    def __init__(self, max_workers: int, *, on_change: Callable[[int], None] | None = None) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="wfc-stage")
        self._lock = threading.Lock()
        self._abandoned: set[_Watched] = set()
        self._on_change = on_change

    @property
    def abandoned(self) -> int:
        """Threads still running calls nobody waits for any more."""
        with self._lock:
            return len(self._abandoned)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        watched = _Watched(self)
        inner = super().submit(fn, *args, **kwargs)
        watched.inner = inner
        inner.add_done_callback(watched.settle)
        return watched

    def _abandon(self, call: _Watched) -> None:
        with self._lock:
            self._abandoned.add(call)
            count = len(self._abandoned)
        self._changed(count)

    def _returned(self, call: _Watched) -> None:
        with self._lock:
            if call not in self._abandoned:
                return
            self._abandoned.discard(call)
            count = len(self._abandoned)
        self._changed(count)

    def _changed(self, count: int) -> None:
        if self._on_change is not None:
            self._on_change(count)


def install_stage_threads(
    *,
    worker_id: str,
    slots: int,
    max_abandoned: int,
    stopping: Callable[[], bool],
    give_up: Callable[[str], None],
) -> StageThreads:
    """Run `def` stages in a pool of the worker's own, with room for its `slots` and the
    threads it may abandon, that counts those threads: each change is logged on the
    running loop (a warning unless `stopping()`), and more than `max_abandoned` calls
    `give_up` with the reason."""
    loop = asyncio.get_running_loop()

    def abandoned_threads_changed(count: int) -> None:
        extra = {"worker_id": worker_id, "abandoned_threads": count}
        if count == 0:
            log.info("every abandoned stage thread has returned", extra=extra)
            return
        log.log(
            logging.INFO if stopping() else logging.WARNING,  # stopping: expected
            "worker holds %d abandoned stage thread(s) (stages that timed out or whose run "
            "ended, still running; limit %d)",
            count,
            max_abandoned,
            extra=extra,
        )
        if count > max_abandoned:
            give_up(
                f"{count} stage threads never returned after their stage timed out or its run "
                f"ended (more than --max-abandoned-threads {max_abandoned}); "
                "restart the worker to get them back"
            )

    def changed(count: int) -> None:  # called on the stage's thread when it returns
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
            loop.call_soon_threadsafe(abandoned_threads_changed, count)

    threads = StageThreads(slots + max_abandoned + SPARE_THREADS, on_change=changed)
    loop.set_default_executor(threads)
    return threads
