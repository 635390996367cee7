"""What the port conformance suites build their cases from: the adapters under test
(`Ports`) and plausible records (`a_run`, `a_stage`, `a_job`, `an_event` …).

`wfc.testing.conformance` offers them with `PortConformance`; the suites beside it
(`fencing`, `limits`, `listing` …) import them from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from wfc.plan import DEFAULT_QUEUE
from wfc.runtime.adapters.memory.clock import FakeClock
from wfc.runtime.job_records import JobRecord, JobSpec
from wfc.runtime.ports import AICallLogger, BlobStore, JobTransport, Persistence
from wfc.runtime.records import NewOutboxEvent, RunRecord, StageRecord, Status


@dataclass(slots=True)
class Ports:
    """The adapters under test, sharing one fake clock."""

    clock: FakeClock
    persistence: Persistence
    jobs: JobTransport
    blobs: BlobStore
    ai_calls: AICallLogger


def a_run(
    clock: FakeClock, run_id: str, *, priority: int = 5, status: Status = Status.PENDING
) -> RunRecord:
    """A run record with plausible values."""
    now = clock.now()
    return RunRecord(
        id=run_id,
        workflow_id="wf",
        workflow_name="Workflow",
        plan_fingerprint="sha256:x",
        status=status,
        input={"text": "hi"},
        config={"a": {"n": 1}},
        priority=priority,
        created_at=now,
        updated_at=now,
    )


def a_stage(
    clock: FakeClock, run_id: str, stage_id: str, *, group: int = 1, number: int = 1
) -> StageRecord:
    """A PENDING stage row."""
    now = clock.now()
    return StageRecord(
        id=f"{run_id}/{stage_id}",
        run_id=run_id,
        stage_id=stage_id,
        stage_name=stage_id.title(),
        stage_number=number,
        execution_group=group,
        status=Status.PENDING,
        config={},
        created_at=now,
        updated_at=now,
    )


async def a_running_stage(ports: Ports) -> tuple[RunRecord, StageRecord, str]:
    """A RUNNING run `r1` with one event, its RUNNING stage `a` and that stage's leased
    job: the run and the row as read, and the job's id."""
    p = ports.persistence
    await p.create_run(a_run(ports.clock, "r1", status=Status.RUNNING))
    await p.append_outbox([an_event(ports.clock, "e1", "r1")])
    row = await p.upsert_stage(
        replace(a_stage(ports.clock, "r1", "a"), status=Status.RUNNING, attempt=1), {}
    )
    await ports.jobs.enqueue([a_job("r1")])
    (job,) = await ports.jobs.dequeue(1)
    run = await p.get_run("r1")
    assert run is not None
    ports.clock.advance(timedelta(seconds=1))
    return run, row, job.id


# What can change under a transaction that took `a_running_stage` as read (`move_under`).
MOVES = ("run", "stage", "cancelled", "next row", "job")


async def move_under(ports: Ports, moved: str, row: StageRecord, job_id: str) -> str:
    """Change what `a_running_stage` returned as read; the job id to complete after it."""
    p = ports.persistence
    if moved == "run":
        await p.update_run("r1", {})
    elif moved == "stage":
        await p.update_stage(row.id, {"attempt": 2})
    elif moved == "cancelled":
        await p.update_run("r1", {"status": Status.CANCELLED})
    elif moved == "next row":
        await p.upsert_stage(a_stage(ports.clock, "r1", "b", group=2, number=2), {})
    else:
        return "gone"  # no such job to complete
    return job_id


@dataclass(slots=True)
class SlotTaker:
    """A `JobTaker` with `free` slots that records what it was handed."""

    free: int
    taken: list[list[JobRecord]] = field(default_factory=list)
    more_queued: list[bool] = field(default_factory=list)

    def free_slots(self) -> int:
        return self.free

    def take(self, jobs: Sequence[JobRecord], *, more_queued: bool) -> None:
        self.taken.append(list(jobs))
        self.more_queued.append(more_queued)

    def serves(self, queue: str) -> bool:
        return queue == DEFAULT_QUEUE


def a_job(
    run_id: str, stage_id: str = "a", *, priority: int = 5, run_at: datetime | None = None
) -> JobSpec:
    """A job spec."""
    return JobSpec(
        run_id=run_id,
        workflow_id="wf",
        stage_id=stage_id,
        priority=priority,
        max_attempts=2,
        payload={"config": {}},
        run_at=run_at,
    )


def an_event(
    clock: FakeClock, name: str, run_id: str, event_type: str = "stage:progress"
) -> NewOutboxEvent:
    """An outbox event whose payload `{"n": name}` tells it apart."""
    return NewOutboxEvent(
        run_id=run_id,
        event_type=event_type,
        payload={"n": name},
        causation_id="c",
        occurred_at=clock.now(),
    )
