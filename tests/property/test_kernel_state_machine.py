"""Hypothesis drives random workflows through random failures, cancellations and crashes.

Whatever happens, once maintenance has run long enough every run is
COMPLETED, FAILED or CANCELLED, no job is left PENDING or RUNNING, no stage
completed twice, and every run's events are numbered 1..n without gaps.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from pydantic import BaseModel

from wfc.errors import NonRetryableError
from wfc.plan import RetryPolicy
from wfc.runtime import JobExecute, RunCancel, WorkflowBuilder, define_stage
from wfc.runtime.hosts import process_job
from wfc.runtime.records import TERMINAL, Status
from wfc.testing import TestKernel, make_test_kernel


class Done(BaseModel):
    stage: str


class KernelMachine(RuleBasedStateMachine):
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.completions: Counter[tuple[str, str]] = Counter()
        self.rng = random.Random(0)
        self.tk: TestKernel | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    @property
    def kernel(self) -> TestKernel:
        assert self.tk is not None
        return self.tk

    @initialize(
        shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
        failure_rate=st.sampled_from([0.0, 0.2, 0.5]),
        seed=st.integers(0, 2**16),
    )
    def build(self, shape: list[int], failure_rate: float, seed: int) -> None:
        self.rng = random.Random(seed)
        builder = WorkflowBuilder("random", "Random")
        for g, size in enumerate(shape):
            group = [self._stage(f"s{g}_{i}", failure_rate) for i in range(size)]
            builder = builder.pipe(group[0]) if size == 1 else builder.parallel(group)
        self.tk = make_test_kernel(builder.build())

    def _stage(self, stage_id: str, failure_rate: float) -> Any:
        def execute(ctx: Any) -> Done:
            roll = self.rng.random()
            if roll < failure_rate / 4:
                raise NonRetryableError("bad luck")
            if roll < failure_rate:
                raise RuntimeError("transient")
            self.completions[(ctx.run_id, stage_id)] += 1
            return Done(stage=stage_id)

        return define_stage(
            id=stage_id,
            output=Done,
            execute=execute,
            retry=RetryPolicy(max_attempts=3, backoff_initial_ms=1000),
        )

    @rule(target=runs)
    def create_run(self) -> str:
        return str(self.run(self.kernel.create_run("random", {})))

    @rule()
    def tick(self) -> None:
        self.run(self.kernel.tick())

    @rule()
    def work_one(self) -> None:
        leased = self.run(self.kernel.jobs.dequeue())
        if leased:
            self.run(process_job(self.kernel.kernel, leased[0]))

    @rule()
    def worker_vanishes_before_running(self) -> None:
        self.run(self.kernel.jobs.dequeue())

    @rule()
    def worker_vanishes_after_running(self) -> None:
        leased = self.run(self.kernel.jobs.dequeue())
        if leased:
            job = leased[0]
            self.run(
                self.kernel.kernel.dispatch(
                    JobExecute(
                        workflow_run_id=job.run_id,
                        workflow_id=job.workflow_id,
                        stage_id=job.stage_id,
                        config=job.payload.get("config", {}),
                        attempt=job.attempt,
                    )
                )
            )

    @rule(run_id=runs)
    def cancel(self, run_id: str) -> None:
        self.run(self.kernel.kernel.dispatch(RunCancel(workflow_run_id=run_id)))

    @rule(seconds=st.integers(1, 900))
    def time_passes(self, seconds: int) -> None:
        self.kernel.clock.advance(seconds=seconds)

    @invariant()
    def no_stage_completes_twice(self) -> None:
        assert all(n == 1 for n in self.completions.values()), self.completions

    @invariant()
    def event_sequences_have_no_gaps(self) -> None:
        if self.tk is None:
            return
        by_run: dict[str, list[int]] = {}
        for event in self.run(self.tk.all_outbox()):
            by_run.setdefault(event.run_id, []).append(event.sequence)
        for sequences in by_run.values():
            assert sorted(sequences) == list(range(1, len(sequences) + 1))

    def teardown(self) -> None:
        try:
            if self.tk is not None:
                self.run(self._settle())
        finally:
            self.loop.close()

    async def _settle(self) -> None:
        tk = self.kernel

        async def open_jobs() -> list[Any]:
            return [j for j in await tk.all_jobs() if j.status in (Status.PENDING, Status.RUNNING)]

        # A vanished worker's lease outlives its run; the reaper and a ghost delivery close it.
        for _ in range(200):
            await tk.tick()
            await tk.work()
            runs = await tk.all_runs()
            if all(r.status in TERMINAL for r in runs) and not await open_jobs():
                break
            tk.clock.advance(minutes=6)
        await tk.flush()
        runs = await tk.all_runs()
        assert all(r.status in TERMINAL for r in runs), [(r.id, r.status) for r in runs]
        assert not await open_jobs()
        for run in runs:
            if run.status is Status.COMPLETED:
                rows = await tk.persistence.stages_of_run(run.id)
                assert all(row.status is Status.COMPLETED for row in rows)


TestKernelStateMachine = KernelMachine.TestCase
TestKernelStateMachine.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
