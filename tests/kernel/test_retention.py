"""Retention: finished runs older than a cutoff are deleted with everything they hold (stage
rows, items, logs, events, jobs, blobs); running ones and recent ones are untouched
(memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.databases import kernel_on_storage
from tests.kernel.test_map import Batch, Length, Text, _mapped, measure
from wfc.plan import ItemFailure
from wfc.runtime import Workflow, WorkflowBuilder, define_stage
from wfc.runtime.kernel.retention import prune_finished_runs
from wfc.runtime.kernel.rows import run_prefix
from wfc.runtime.records import Status
from wfc.testing import TestKernel


def _workflows() -> list[Workflow]:
    return [
        WorkflowBuilder("lengths", "Lengths", input=Batch)
        .pipe(
            _mapped(
                define_stage(id="measure", input=Text, output=Length, execute=measure),
                ("input", "texts"),
                policy=ItemFailure.FAIL,
            )
        )
        .build()
    ]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def rk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestKernel]:
    async with kernel_on_storage(request.param, _workflows(), tmp_path) as kernel:
        yield kernel


async def _holdings(rk: TestKernel, run_id: str) -> tuple[int, int, int, int, int]:
    run = await rk.persistence.get_run(run_id)
    if run is None:
        return (0, 0, 0, 0, 0)
    return (
        len(await rk.persistence.stages_of_run(run_id)),
        len(await rk.persistence.items_of_stage(run_id, "measure")),
        len(await rk.persistence.outbox_of_run(run_id)),
        len(await rk.jobs.jobs_of_run(run_id)),
        len(await rk.blobs.list(run_prefix(run))),
    )


async def test_old_finished_runs_go_with_all_they_hold_and_nothing_else_does(
    rk: TestKernel,
) -> None:
    texts = {"texts": [{"text": "abc"}, {"text": "de"}]}
    old = [await rk.run("lengths", texts) for _ in range(5)]
    assert all(run.status is Status.COMPLETED for run in old)
    before = await _holdings(rk, old[0].id)
    assert all(count > 0 for count in before), before
    rk.clock.advance(days=31)
    recent = await rk.run("lengths", texts)
    running = await rk.create_run("lengths", texts)
    await rk.tick()  # claimed: RUNNING, its first items queued
    rk.clock.advance(days=31)

    pruned = await prune_finished_runs(rk.kernel.deps, timedelta(days=40), batch=2)
    assert (pruned.runs, pruned.more) == (5, False)
    assert pruned.jobs == 5 * 2 and pruned.blobs >= 5
    for run in old:
        assert await rk.persistence.get_run(run.id) is None
        assert await rk.jobs.jobs_of_run(run.id) == []
        assert await rk.persistence.items_of_stage(run.id, "measure") == []
        assert await rk.blobs.list(run_prefix(run)) == []
    assert await _holdings(rk, recent.id) == before  # finished 31 days ago: kept
    still = await rk.persistence.get_run(running)
    assert still is not None and still.status is Status.RUNNING
    assert len(await rk.jobs.jobs_of_run(running)) == 2
    finished = await rk.drive(running)  # a run left running finishes as if nothing happened
    assert finished.status is Status.COMPLETED


async def test_a_prune_is_bounded_and_picks_up_where_it_stopped(rk: TestKernel) -> None:
    for _ in range(5):
        await rk.run("lengths", {"texts": []})
    rk.clock.advance(days=2)
    first = await prune_finished_runs(rk.kernel.deps, timedelta(days=1), batch=2, max_batches=1)
    assert (first.runs, first.more) == (2, True)
    rest = await prune_finished_runs(rk.kernel.deps, timedelta(days=1), batch=2)
    assert (rest.runs, rest.more) == (3, False)
    assert await rk.persistence.list_runs() == []
    with pytest.raises(ValueError, match="only finished runs"):
        await prune_finished_runs(rk.kernel.deps, timedelta(0), statuses=[Status.RUNNING])


async def test_a_host_with_retention_prunes_as_it_ticks(rk: TestKernel) -> None:
    from wfc.runtime.hosts import MaintenanceSettings, maintenance_tick

    done = await rk.run("lengths", {"texts": [{"text": "a"}]})
    rk.clock.advance(days=2)
    keep = MaintenanceSettings(worker_id="w")
    assert (await maintenance_tick(rk.kernel, keep)).runs_pruned == 0
    retain = MaintenanceSettings(worker_id="w", retain=timedelta(days=1))
    tick = await maintenance_tick(rk.kernel, retain)
    assert tick.runs_pruned == 1 and not tick.errors
    assert await rk.persistence.get_run(done.id) is None
