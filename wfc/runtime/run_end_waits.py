"""`RunEndWaits`: who in this process waits for which run, woken as soon as it ends.

`wait_for_run` polls the run every `poll_interval`; a waiter whose run is driven by
another process (an API process whose workers run elsewhere, `wfc runs watch` in a
shell) used to see its end only at the next poll. This wakes it instead:

- a run ended by a transaction of a kernel in this process is told here through
  `Deps.run_end_listeners` (`run_ended`), on every backend, memory included;
- a run ended by another process is told by the database (`ports.RunEnds`: a NOTIFY on
  PostgreSQL with the run's id, a change of the SQLite file's `data_version`).

One listening (one connection, one watcher) serves every waiter of the storage it
belongs to, not one per waiter. It opens with the first waiter and stays open
`LINGER` after the last has gone, so calls made one after another do not each open
and close a connection; `close()` ends it with the storage. When it opens, and when it
opens again after losing its connection, it wakes every waiter: an end committed before
the listening held was never told, and each waiter looked (or armed) before it began.
The poll stays the bound either way: a notification missed never leaves a waiter
hanging for longer than its `poll_interval`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from wfc.runtime.ports import RunEnds

log = logging.getLogger("wfc.waits")

LINGER = 10.0
"""Seconds the listening stays open after its last waiter has gone."""

RETRY_AFTER = 1.0
"""Seconds between two attempts to listen again after the listening failed or was lost."""


class RunEndSignal:
    """An edge-triggered wakeup for the waiters of one run: `arm()` before looking at the
    run, wait on the event it returns after. (`hosts.waiting.Signal` with a count of its
    waiters: the kernel's `Deps` holds these, and the hosts package imports the kernel.)"""

    __slots__ = ("_event", "waiters")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.waiters = 0

    def arm(self) -> asyncio.Event:
        return self._event

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


class RunEndWaits:
    """The waiters of one storage (or one kernel, without one), by run id.

    Used from one event loop at a time, as the storage it belongs to is."""

    def __init__(self, run_ends: RunEnds | None = None) -> None:
        self._run_ends = run_ends
        self._signals: dict[str, RunEndSignal] = {}
        self._listener: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None

    @property
    def listening(self) -> bool:
        """Whether a listening to the database is open (or opening) now."""
        return self._listener is not None and not self._listener.done()

    def run_ended(self, run_id: str | None) -> None:
        """`run_id` ended (None: some run may have moved): wake its waiters (every waiter)."""
        if run_id is None:
            for signal in self._signals.values():
                signal.fire()
            return
        one = self._signals.get(run_id)
        if one is not None:
            one.fire()

    @contextlib.asynccontextmanager
    async def waiting(self, run_id: str) -> AsyncIterator[RunEndSignal]:
        """The signal fired when `run_id` ends, for as long as the block runs."""
        signal = self._signals.get(run_id)
        if signal is None:
            signal = self._signals[run_id] = RunEndSignal()
        signal.waiters += 1
        self._keep_listening()
        try:
            yield signal
        finally:
            signal.waiters -= 1
            if signal.waiters == 0 and self._signals.get(run_id) is signal:
                del self._signals[run_id]
            if not self._signals and self.listening:
                self._linger = asyncio.get_running_loop().call_later(LINGER, self._stop)

    async def close(self) -> None:
        """Stop listening now (the storage closes); waiters left fall back to their poll."""
        task = self._stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _keep_listening(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._run_ends is not None and not self.listening:
            self._listener = asyncio.create_task(
                _listen(self._run_ends, self.run_ended), name="wfc-run-end-listen"
            )

    def _stop(self) -> asyncio.Task[None] | None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
        return task


async def _listen(run_ends: RunEnds, run_ended: Callable[[str | None], None]) -> None:
    """Listen until cancelled, again after each loss; every waiter is woken each time the
    listening (re)opens, for what ended while it did not hold."""
    while True:
        try:
            async with run_ends.listen(run_ended) as lost:
                run_ended(None)
                await lost
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("listening for run ends failed; waiters poll meanwhile", exc_info=True)
        await asyncio.sleep(RETRY_AFTER)
