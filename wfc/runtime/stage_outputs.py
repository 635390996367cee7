"""`StageOutputs`: a run's stage outputs by stage id, each made the reader's own when first read.

A stage's workflow context is the outputs of every completed stage of the groups
before its own, but most stages read only their input (the previous group's
output). Parsing or copying every earlier output for every stage made a chain of N
stages handing each other large outputs cost O(N²) parses or copies; parsing or
copying an output only when it is read makes it cost what its stages read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from wfc.runtime.copies import json_copy


class StageOutputs(Mapping[str, Any]):
    """A read-only mapping of stage id → output that parses or copies an output the first
    time it is read, and gives the same object on every later read.

    It holds each output as stored (`held`): the JSON text read from the blob store
    (bytes), or a value kept as stored (an output a worker just produced, or one a
    warm start carried over). Those are never handed out. A read gets an object of
    its own, `json.loads` of the text or `json_copy` of the value, made once: so a
    stage body that changes what it read in place sees its change on its next read,
    as it would in a dict, and nothing else does: not the stored output, not another
    stage's context, not a warm start, a run's output or a condition, which are made
    from `held`, never from what was handed out. That is the isolation copies of
    every output gave before, paid only for what is read.

    Whether a stage has an output (`in`, iteration, `len`) is answered from `held`,
    without parsing anything.
    """

    __slots__ = ("_held", "_made")

    def __init__(self, held: dict[str, Any] | None = None) -> None:
        self._held: dict[str, Any] = held if held is not None else {}
        self._made: dict[str, Any] = {}

    def __getitem__(self, stage_id: str) -> Any:
        made = self._made
        if stage_id in made:
            return made[stage_id]
        value = made[stage_id] = own_copy(self._held[stage_id])  # KeyError: no output
        return value

    def __contains__(self, stage_id: object) -> bool:
        return stage_id in self._held  # `Mapping`'s own would read (and parse) the output

    def __iter__(self) -> Iterator[str]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def __repr__(self) -> str:
        return f"StageOutputs({sorted(self._held)})"

    @property
    def held(self) -> Mapping[str, Any]:
        """The outputs as stored (bytes of JSON text, or values), for the kernel to hand on
        to another reader (a warm start, a transition), which makes its own objects from
        them. Never for stage code: changing one would change every later reader's."""
        return self._held


def own_copy(stored: Any) -> Any:
    """A reader's own object made from an output as stored: its JSON text parsed, or its
    value copied (`bytes` is never a JSON value, so it marks the text)."""
    return json.loads(stored) if isinstance(stored, bytes) else json_copy(stored)
