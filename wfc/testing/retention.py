"""The retention part of the port conformance suite: pruning finished runs.

`Persistence.prune_runs` deletes finished runs older than the cutoff, oldest
first and at most `limit`, with their stage rows, items, logs and events, and
never a run that is still going; `JobTransport.delete_jobs` and
`BlobStore.delete_prefixes` take what is left of them. Subclass
`RetentionConformance` beside `PortConformance`, with the same `ports` fixture.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from wfc.runtime.records import LogRecord, StageFence, Status
from wfc.testing.conformance import Ports, a_job, a_run, a_stage, an_event
from wfc.testing.items import an_item

FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


async def _finished(ports: Ports, run_id: str, status: Status = Status.COMPLETED) -> None:
    """A run `run_id` that ended now with a stage, an item, a log line and an event."""
    p = ports.persistence
    now = ports.clock.now()
    await p.create_run(replace(a_run(ports.clock, run_id), status=status, completed_at=now))
    await p.upsert_stage(a_stage(ports.clock, run_id, "m"), {})
    await p.start_item(an_item(ports, 0, run_id=run_id), {}, StageFence.startable(1))
    await p.add_log(
        LogRecord(
            id=f"{run_id}-log",
            run_id=run_id,
            stage_record_id=None,
            level="INFO",
            message="m",
            fields={},
            created_at=now,
        )
    )
    await p.append_outbox([an_event(ports.clock, f"{run_id}-e", run_id)])


class RetentionConformance:
    async def test_old_finished_runs_are_pruned_oldest_first_with_their_rows(
        self, ports: Ports
    ) -> None:
        p = ports.persistence
        await _finished(ports, "oldest", Status.FAILED)
        ports.clock.advance(seconds=1)
        await _finished(ports, "older", Status.CANCELLED)
        ports.clock.advance(seconds=1)
        await _finished(ports, "old")
        await p.create_run(a_run(ports.clock, "going"))  # PENDING: never pruned
        ports.clock.advance(days=1)
        await _finished(ports, "recent")
        cutoff = ports.clock.now() - timedelta(hours=1)
        first = await p.prune_runs(cutoff, FINISHED, 2)
        assert [run.id for run in first] == ["oldest", "older"]
        only_failed = await p.prune_runs(cutoff, [Status.FAILED], 10)
        assert only_failed == []  # `old` COMPLETED is not among the statuses asked for
        assert [run.id for run in await p.prune_runs(cutoff, FINISHED, 10)] == ["old"]
        for gone in ("oldest", "older", "old"):
            assert await p.get_run(gone) is None
            assert await p.stages_of_run(gone) == []
            assert await p.items_of_stage(gone, "m") == []
            assert await p.logs_of_run(gone) == []
            assert await p.outbox_of_run(gone) == []
        assert await p.get_run("going") is not None
        assert len(await p.stages_of_run("recent")) == 1
        assert len(await p.outbox_of_run("recent")) == 1

    async def test_a_pruned_run_s_jobs_and_blobs_go_by_run_and_prefix(self, ports: Ports) -> None:
        q, b = ports.jobs, ports.blobs
        await q.enqueue([a_job("r1"), a_job("r1", "b"), a_job("r2")])
        assert await q.delete_jobs(["r1", "nothing"]) == 2
        assert await q.jobs_of_run("r1") == [] and len(await q.jobs_of_run("r2")) == 1
        assert await q.delete_jobs([]) == 0
        for key in ("runs/wf/r1/a/output.json", "runs/wf/r1/b/x", "runs/wf/r10/a/output.json"):
            await b.put(key, b"x")
        await b.put("runs/wf/r2/a/output.json", b"x")
        assert await b.delete_prefixes(["runs/wf/r1/", "runs/wf/r2/"]) == 3
        assert await b.list("runs/wf/") == ["runs/wf/r10/a/output.json"]
        assert await b.delete_prefixes(["runs/wf/r1_%/"]) == 0  # no wildcards in a prefix
        assert await b.delete_prefixes([]) == 0
