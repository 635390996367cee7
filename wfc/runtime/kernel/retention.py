"""Retention: deleting finished runs, with everything that belongs to them, in batches.

A finished run keeps its rows (stages, items, logs, events), its jobs and its
blobs (input-sized outputs, artifacts) until it is pruned; nothing else ever
deletes them. Each batch is one short transaction: the runs and their rows,
and, when the job queue and the blob store share the transaction (SQL), their
jobs and blobs too, so a prune that stops midway leaves every run either whole
or gone. The AI call ledger is kept: it is the account of what was spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from wfc.runtime.kernel.deps import Deps, atomic
from wfc.runtime.kernel.rows import run_prefix
from wfc.runtime.records import Status

FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
DEFAULT_BATCH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """What a prune deleted."""

    runs: int = 0
    jobs: int = 0
    blobs: int = 0
    more: bool = False  # stopped at `max_batches` with older runs left


async def prune_finished_runs(
    deps: Deps,
    older_than: timedelta,
    *,
    statuses: Sequence[Status] = FINISHED,
    batch: int = DEFAULT_BATCH,
    max_batches: int | None = None,
) -> Pruned:
    """Delete the runs in `statuses` (finished ones only) that finished more than
    `older_than` ago, oldest first, `batch` per transaction, at most `max_batches` batches."""
    unfinished = [status for status in statuses if status not in FINISHED]
    if unfinished:
        raise ValueError(f"only finished runs are pruned, not {', '.join(unfinished)}")
    now = deps.clock.now()
    if older_than >= now - datetime.min.replace(tzinfo=now.tzinfo):
        return Pruned()  # an age reaching before year 1: no run finished that long ago
    cutoff = now - older_than
    total = Pruned()
    batches = 0
    while max_batches is None or batches < max_batches:
        pruned = await _one_batch(deps, cutoff, statuses, batch)
        batches += 1
        total = Pruned(
            runs=total.runs + pruned.runs,
            jobs=total.jobs + pruned.jobs,
            blobs=total.blobs + pruned.blobs,
        )
        if pruned.runs < batch:
            return total
    return replace(total, more=True)


async def _one_batch(
    deps: Deps, cutoff: datetime, statuses: Sequence[Status], batch: int
) -> Pruned:
    """One transaction: up to `batch` runs with their rows, and their jobs and blobs (in the
    transaction when the queue and the store share it, else right after it commits)."""
    counted = {"jobs": 0, "blobs": 0}
    async with atomic(deps, deps.ids.new_id()) as unit:
        doomed = await unit.db.prune_runs(cutoff, statuses, batch)

        async def jobs_and_blobs() -> None:
            counted["jobs"] = await deps.jobs.delete_jobs([run.id for run in doomed])
            counted["blobs"] = await deps.blobs.delete_prefixes([run_prefix(run) for run in doomed])

        if doomed:
            await unit.with_jobs(jobs_and_blobs)
    return Pruned(runs=len(doomed), jobs=counted["jobs"], blobs=counted["blobs"])
