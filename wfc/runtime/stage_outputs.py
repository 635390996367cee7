"""`StageOutputs`: a run's stage outputs by stage id, each made the reader's own when first read.

A stage's workflow context is the outputs of every completed stage of the groups
before its own, but most stages read only their input (the previous group's
output). Parsing or copying every earlier output for every stage made a chain of N
stages handing each other large outputs cost O(N²) parses or copies; parsing or
copying an output only when it is read makes it cost what its stages read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from json import loads as parse_json
from typing import Any

from wfc.runtime.copies import json_copy


class StageOutputs(Mapping[str, Any]):
    """A read-only mapping of stage id → output that parses or copies an output the first
    time it is read, and gives the same object on every later read.

    It holds each output as stored (`held`): the JSON text read from the blob store
    (bytes), or a value kept as stored (an output a worker just produced, or one a
    warm start carried over). Those are never handed out. A read gets an object of
    its own, the text parsed or the value copied (`json_copy`), made once: so a
    stage body that changes what it read in place sees its change on its next read,
    as it would in a dict, and nothing else does: not the stored output, not another
    stage's context, not a warm start, a run's output or a condition, which are made
    from `held`, never from what was handed out. That is the isolation copies of
    every output gave before, paid only for what is read.

    Whether a stage has an output (`in`, iteration, `len`) is answered from `held`,
    without parsing anything.
    """

    __slots__ = ("_made", "held")

    def __init__(self, held: dict[str, Any] | None = None) -> None:
        # The outputs as stored (bytes of JSON text, or values), for the kernel to hand on
        # to another reader (a warm start, a transition), which makes its own objects from
        # them. Never for stage code: changing one would change every later reader's.
        self.held: Mapping[str, Any] = held if held is not None else {}
        self._made: dict[str, Any] = {}

    def __getitem__(self, stage_id: str) -> Any:
        made = self._made
        if stage_id in made:
            return made[stage_id]
        stored = self.held[stage_id]  # KeyError: the stage has no output
        # `bytes` is never a JSON value, so it marks the text to parse.
        value = parse_json(stored) if isinstance(stored, bytes) else json_copy(stored)
        made[stage_id] = value
        return value

    def unread_text(self, stage_id: str) -> bytes | None:
        """The JSON text `stage_id`'s output is stored as, when this mapping holds it as text
        and has made no object from it: a reader that validates it into a model (a stage's
        input) validates the text itself, and the tree a parse would make, which the
        validation would copy into the model and drop, is never made. Bytes cannot be
        changed, and a model validated from text shares no object with anything, so what
        every other reader gets is as before. None for an output held as a value, or one
        read already (a body may have changed what it got: a later read sees that)."""
        if stage_id in self._made:
            return None
        stored = self.held.get(stage_id)
        return stored if isinstance(stored, bytes) else None

    def __contains__(self, stage_id: object) -> bool:
        return stage_id in self.held  # `Mapping`'s own would read (and parse) the output

    def __iter__(self) -> Iterator[str]:
        return iter(self.held)

    def __len__(self) -> int:
        return len(self.held)

    def __repr__(self) -> str:
        return f"StageOutputs({sorted(self.held)})"
