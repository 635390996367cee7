"""`UuidIds` makes RFC 9562 version-7 UUIDs: valid, unique, and in the order they were
made across milliseconds (what keeps the databases' key indexes appending)."""

from __future__ import annotations

import time
import uuid

from wfc.runtime.adapters.memory.clock import UuidIds


def test_ids_are_version_7_uuids_of_this_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = UuidIds().new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    ids = UuidIds()
    made = []
    for _ in range(5):
        made.append(ids.new_id())
        time.sleep(0.002)
    assert made == sorted(made)


def test_ids_made_in_the_same_millisecond_are_still_unique() -> None:
    ids = UuidIds()
    made = [ids.new_id() for _ in range(20_000)]
    assert len(set(made)) == len(made)
