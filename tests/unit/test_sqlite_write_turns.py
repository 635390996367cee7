"""The turn to write of one process's SQLite writers (`sqlite_writes.WriteTurns`).

A free turn goes to whoever asks first: a writer that commits and begins again without
suspending must not queue behind a waiter that has not run yet, or a queue, once made,
lasts as long as the process is busy (each transaction then runs on another slot's
connection, whose page cache SQLite drops). But only for so long: once a waiter has
waited `hand_over_after_s`, the next release hands it the turn, so a writer that suspends
inside its turn and begins again at once cannot starve it.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from wfc.runtime.adapters.sql.sqlite_writes import HAND_OVER_AFTER_S, Turn, WriteTurns


class _Clock:
    """The turns' clock, moved by the test: fairness without timing.

    A writer is handed the turn once it has waited `HAND_OVER_AFTER_S` (5 ms) by this clock.
    On the event loop's clock a test that means "has not waited long" would depend on how
    busy the machine is: one descheduling of the test process between two steps and the
    waiter is handed the turn it was meant to lose."""

    def __init__(self) -> None:
        self.at = 0.0

    def __call__(self) -> float:
        return self.at


async def _writer(turns: WriteTurns, name: str, taken: list[str]) -> Turn:
    turn = await turns.acquire()
    taken.append(name)
    return turn


async def _settle() -> None:
    """Let every task that can run, run (a handful of loop passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_a_writer_that_begins_again_without_suspending_takes_the_free_turn() -> None:
    turns = WriteTurns(timeout_s=5.0, now=_Clock())  # a waiter never waits long
    taken: list[str] = []
    first = await _writer(turns, "first", taken)
    waiting = asyncio.create_task(_writer(turns, "waiting", taken))
    await _settle()
    assert taken == ["first"]

    first.release()  # a commit: the waiter is woken, but has not run yet
    again = await _writer(turns, "first again", taken)
    assert taken == ["first", "first again"]

    again.release()
    (await waiting).release()
    assert taken == ["first", "first again", "waiting"]


async def test_a_woken_writer_that_found_the_turn_taken_is_first_in_line() -> None:
    turns = WriteTurns(timeout_s=5.0, now=_Clock())  # a waiter never waits long
    taken: list[str] = []
    first = await _writer(turns, "first", taken)
    early = asyncio.create_task(_writer(turns, "early", taken))
    await _settle()
    late = asyncio.create_task(_writer(turns, "late", taken))
    await _settle()

    first.release()
    again = await _writer(turns, "first again", taken)  # taken before `early` ran
    await _settle()  # `early` wakes, finds it taken, and waits again
    again.release()
    (await early).release()
    (await late).release()
    assert taken == ["first", "first again", "early", "late"]


async def test_a_writer_cancelled_after_it_was_woken_passes_the_turn_on() -> None:
    turns = WriteTurns(timeout_s=5.0, now=_Clock())  # a waiter never waits long
    taken: list[str] = []
    first = await _writer(turns, "first", taken)
    cancelled = asyncio.create_task(_writer(turns, "cancelled", taken))
    await _settle()
    next_in_line = asyncio.create_task(_writer(turns, "next", taken))
    await _settle()

    first.release()  # wakes `cancelled`, which is cancelled before it runs
    cancelled.cancel()
    await _settle()

    assert cancelled.cancelled()
    assert next_in_line.done()  # not left waiting for a turn nobody holds
    (await next_in_line).release()
    assert taken == ["first", "next"]


async def test_a_turn_not_given_back_in_the_busy_timeout_fails_as_sqlite_would() -> None:
    turns = WriteTurns(timeout_s=0.01)
    held = await turns.acquire()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        await turns.acquire()
    held.release()
    assert not held.waiting  # the writer that gave up left nothing queued
    (await turns.acquire()).release()
    assert not held.locked()


async def test_a_writer_that_suspends_in_its_turn_and_begins_again_does_not_starve_a_waiter() -> (
    None
):
    """A COMMIT under synchronous=FULL runs on the connection's thread: the holder suspends
    inside its turn, and begins again the moment it has committed."""
    clock = _Clock()
    turns = WriteTurns(timeout_s=5.0, now=clock)
    taken: list[str] = []
    each = HAND_OVER_AFTER_S / 4  # one transaction's time

    async def busy() -> None:
        turn = await _writer(turns, "busy", taken)
        for _ in range(200):  # until the waiter is in, or 200 transactions
            await asyncio.sleep(0)  # its COMMIT, on the connection's thread
            clock.at += each
            turn.release()
            if "waiting" in taken:
                return
            turn = await _writer(turns, "busy", taken)  # its next BEGIN, at once
        turn.release()

    async def waiter() -> None:
        (await _writer(turns, "waiting", taken)).release()

    looping = asyncio.create_task(busy())
    await _settle()
    asked_at = len(taken)
    waiting = asyncio.create_task(waiter())
    await looping
    await waiting
    # It may lose the race for a free turn while it has waited less than the bound (four
    # transactions), and is handed the turn at the release after that.
    assert taken.index("waiting") - asked_at <= 6


async def test_a_writer_cancelled_after_it_was_handed_the_turn_passes_it_on() -> None:
    clock = _Clock()
    turns = WriteTurns(timeout_s=5.0, now=clock)
    taken: list[str] = []
    first = await _writer(turns, "first", taken)
    handed = asyncio.create_task(_writer(turns, "handed", taken))
    await _settle()
    first.release()
    again = await _writer(turns, "first again", taken)  # `handed` loses its race once
    await _settle()
    next_in_line = asyncio.create_task(_writer(turns, "next", taken))
    await _settle()

    clock.at += HAND_OVER_AFTER_S
    again.release()  # hands the turn to `handed`, which is cancelled before it runs
    handed.cancel()
    await _settle()

    assert handed.cancelled()
    assert next_in_line.done()  # the turn it was handed is not left held by no one
    (await next_in_line).release()
    assert taken == ["first", "first again", "next"]
    assert not again.locked()
