"""Jobs leased to a worker that it will not start, given back for another worker.

A stopping worker hands back what it holds (jobs handed to it and not started, a slot's
next job, a job whose stage it abandoned) rather than leave each leased until the stale
lease reaper frees it minutes later. A create or an outcome that chose the worker before
it stopped may commit after it handed back the rest: what it is handed then goes back
at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from wfc.runtime.job_records import JobRecord
from wfc.runtime.ports import JobTransport

log = logging.getLogger("wfc.worker")


class GiveBack:
    """What a worker holds to give back as it stops, and what it is handed after."""

    def __init__(self, jobs: JobTransport) -> None:
        self._jobs = jobs
        self._held: list[JobRecord] = []
        self._late: set[asyncio.Future[None]] = set()
        self.closed = False  # the held ones given back: what comes now goes back at once

    def hold(self, jobs: Iterable[JobRecord]) -> None:
        self._held.extend(jobs)

    def reopen(self) -> None:
        """The worker started again."""
        self.closed = False

    def late(self, jobs: Iterable[JobRecord]) -> None:
        """Jobs handed over once the rest were given back: given back now, in the
        background (`take`, which hands them over, is not a coroutine)."""
        release = asyncio.ensure_future(release_jobs(self._jobs, list(jobs)))
        self._late.add(release)
        release.add_done_callback(self._late.discard)

    async def give_back(self) -> None:
        """Give back what is held, and wait for the late ones already going back."""
        self.closed = True
        held, self._held = self._held, []
        await release_jobs(self._jobs, held)
        await asyncio.gather(*self._late, return_exceptions=True)


async def release_jobs(transport: JobTransport, jobs: Iterable[JobRecord]) -> None:
    for job in jobs:
        try:
            await transport.release(job.id, attempt=job.attempt)
            log.info("released job %s for another worker", job.id, extra={"job_id": job.id})
        except Exception:
            log.exception("could not release job %s; it is reaped when its lease expires", job.id)
