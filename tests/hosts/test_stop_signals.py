"""SIGTERM or SIGINT asks a serving worker to stop; a second one hurries it, cutting the
grace period short (`wfc.runtime.hosts.stop_signals`); the handlers go with the block."""

from __future__ import annotations

import asyncio
import os
import signal

from wfc.runtime.hosts.stop_signals import stop_signals


async def _delivered(signum: int) -> None:
    """Send `signum` to this process and let the event loop run its handler."""
    os.kill(os.getpid(), signum)
    for _ in range(100):
        await asyncio.sleep(0.01)


async def test_a_first_signal_asks_to_stop_and_a_second_hurries() -> None:
    hurried: list[bool] = []
    with stop_signals(hurry=lambda: hurried.append(True)) as stop_requested:
        assert not stop_requested.is_set()
        await _delivered(signal.SIGTERM)
        assert stop_requested.is_set() and not hurried  # stop, finishing jobs in flight
        await _delivered(signal.SIGINT)
        assert hurried == [True]  # and now: the grace period is cut short


async def test_the_handlers_go_with_the_block() -> None:
    with stop_signals(hurry=lambda: None) as stop_requested:
        await _delivered(signal.SIGTERM)
        assert stop_requested.is_set()  # they were there
    loop = asyncio.get_running_loop()
    # Nothing of the block's left on the loop to remove (`remove_signal_handler` says
    # whether it removed one).
    assert not loop.remove_signal_handler(signal.SIGTERM)
    assert not loop.remove_signal_handler(signal.SIGINT)
