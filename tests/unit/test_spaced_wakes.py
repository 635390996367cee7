"""Waiters on a SQLite file are woken at most once per gap, the first change at once."""

from __future__ import annotations

from wfc.runtime.adapters.sql.run_ends import Spaced


def test_the_first_change_after_a_quiet_spell_wakes_at_once() -> None:
    spaced = Spaced(0.05)
    assert not spaced.due(False, 10.0)
    assert spaced.due(True, 10.001)


def test_changes_within_the_gap_are_gathered_into_one_wake_at_its_end() -> None:
    spaced = Spaced(50)  # in ms here, to keep the sums exact
    assert spaced.due(True, 1000)
    looks = [1000 + 5 * n for n in range(1, 21)]  # a change at every look, 5 ms apart
    assert [now for now in looks if spaced.due(True, now)] == [1050, 1100]


def test_a_change_seen_within_the_gap_is_not_lost() -> None:
    spaced = Spaced(0.05)
    assert spaced.due(True, 10.0)
    assert not spaced.due(True, 10.01)  # gathered
    assert not spaced.due(False, 10.03)
    assert spaced.due(False, 10.06)  # told, though the file has not changed since
    assert not spaced.due(False, 10.2)
