"""`UuidIds`: ids drawn in batches are the text of random version-4 UUIDs, as
`str(uuid.uuid4())` writes them, never repeated, also not by a forked child."""

from __future__ import annotations

import os
import uuid

import pytest

from wfc.runtime.adapters.memory import clock
from wfc.runtime.adapters.memory.clock import UuidIds


def test_ids_are_uuid4_texts() -> None:
    ids = UuidIds()
    for _ in range(3 * clock._BATCH):  # across batches
        made = ids.new_id()
        parsed = uuid.UUID(made)
        assert str(parsed) == made
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_are_not_repeated() -> None:
    ids = UuidIds()
    drawn = [ids.new_id() for _ in range(5 * clock._BATCH + 7)]
    assert len(set(drawn)) == len(drawn)


def test_every_random_bit_is_used() -> None:
    """The 122 bits uuid4 leaves random vary: none is lost to the version or variant."""
    ids = UuidIds()
    seen_set, seen_clear = 0, 0
    for _ in range(4 * clock._BATCH):
        value = uuid.UUID(ids.new_id()).int
        seen_set |= value
        seen_clear |= ~value
    fixed = (0xF000 << 64) | (0xC000 << 48)
    everything = (1 << 128) - 1
    assert seen_set & ~fixed & everything == everything & ~fixed
    assert seen_clear & ~fixed & everything == everything & ~fixed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_its_own_ids() -> None:
    """Ids the parent drew and has not handed out yet are not the child's too."""
    ids = UuidIds()
    clock._READY.clear()  # else the draw below may take the last of a batch other tests left
    ids.new_id()  # a batch drawn, most of it still waiting
    assert clock._READY
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        os.write(writing, ids.new_id().encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    childs = os.read(reading, 100).decode()
    os.close(reading)
    assert len(childs) == 36
    assert childs != ids.new_id()
