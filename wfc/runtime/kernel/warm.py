"""What a worker already knows about a run when it hands itself the run's next stage.

The transaction that completes a stage and opens the next group has just read
the run and its stages, and the execution that finished holds the outputs of
every stage before it and its own. When that group's job is handed to the same
worker (`wfc.runtime.handoff`), its execution would read all of that again: the
run with its stages, then one blob per earlier output. A `WarmStart` carries it
over instead, saving those round trips on the path every sequential stage takes.

Entries are registered only after the transaction commits, so they describe
committed state; they are keyed by the delivery (run, stage, attempt), so a
redelivery — a later attempt — reads everything fresh; and each is taken once.
The outputs must be as stored, though a stage body is free to change the
objects it reads: an entry carries them as stored (`StageOutputs.held`: the
JSON text read from the store, or the value a stage produced), and a body only
ever gets objects made from them for its own execution (`StageOutputs`), so
none needs copying before the body runs. The run may be cancelled between
the hand-off and the start: the stage then runs its body, and the outcome's
transaction, which checks the run under its lock, discards the result as a
ghost's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wfc.runtime.record_builders import quick_init
from wfc.runtime.records import RunRecord, StageRecord


@quick_init
@dataclass(frozen=True, slots=True)
class WarmStart:
    """The run, all its stage rows and the outputs known, as the hand-off committed them
    (each output as stored: JSON text or a value, never an object a body was given)."""

    run: RunRecord
    rows: list[StageRecord]
    outputs: Mapping[str, Any]


class WarmStarts:
    """Warm starts waiting for their handed execution, the oldest dropped past `limit`.

    An entry whose job never runs here (its worker stopped and gave it back)
    only waits to be dropped: the job's next delivery is a later attempt.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._entries: OrderedDict[tuple[str, str, int, int | None], WarmStart] = OrderedDict()

    def put(self, stage: StageRecord, warm: WarmStart) -> None:
        """Keep `warm` for the execution of `stage`'s row at its attempt."""
        self._keep((stage.run_id, stage.stage_id, stage.attempt, None), warm)

    def put_item(self, stage_id: str, index: int, attempt: int, warm: WarmStart) -> None:
        """Keep `warm` for the delivery `attempt` of item `index` of a mapped stage."""
        self._keep((warm.run.id, stage_id, attempt, index), warm)

    def forget(self, run_id: str, stage_id: str, attempt: int) -> None:
        """Drop the warm starts of a delivery that will not run as handed: its job was put
        back in the queue at the same attempt, whose next delivery must read everything
        fresh, not what was kept before other work ran."""
        for key in [key for key in self._entries if key[:3] == (run_id, stage_id, attempt)]:
            del self._entries[key]

    def _keep(self, key: tuple[str, str, int, int | None], warm: WarmStart) -> None:
        self._entries[key] = warm
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)

    def take(
        self, run_id: str, stage_id: str, attempt: int, item: int | None = None
    ) -> WarmStart | None:
        """The warm start for this delivery (of `item`, for an item of a mapped stage), once."""
        return self._entries.pop((run_id, stage_id, attempt, item), None)
