"""A stand-in for a worker that jobs are handed to (`wfc.runtime.handoff`), for tests and
measurements of the handoff without a `WorkerHost`."""

from __future__ import annotations

from collections.abc import Sequence

from wfc.plan import DEFAULT_QUEUE
from wfc.runtime.job_records import JobRecord


class SlotTaker:
    """A worker with `slots` job slots that keeps the jobs handed to it in `taken`; each
    job kept takes a slot until the caller removes it from `taken`."""

    def __init__(self, slots: int, queues: Sequence[str] = (DEFAULT_QUEUE,)) -> None:
        self.slots = slots
        self.queues = tuple(queues)
        self.taken: list[JobRecord] = []

    def free_slots(self) -> int:
        return self.slots - len(self.taken)

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        self.taken += jobs

    def serves(self, queue: str) -> bool:
        return queue in self.queues
