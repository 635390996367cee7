"""`TestKernel.run` claims its run in the create's transaction when the first round's claim
would be made alone (`wfc.testing.shortcuts.first_run_taker`): nothing a test reads may
differ from creating the run, then driving it (a claim of its own in the first tick)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from tests.kernel.conftest import Script, build_workflows
from tests.kernel.helpers import DOC
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory import MemoryPersistence
from wfc.runtime.records import Status
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel, make_test_kernel, shortcuts


class _Text(BaseModel):
    text: str


async def _same(ctx: object) -> _Text:
    return _Text(text="x")


def _wide() -> Workflow:
    """Two stages side by side first: a claim alone would hand one and queue the other."""
    side = [define_stage(id=n, input=_Text, output=_Text, execute=_same) for n in ("l", "r")]
    return WorkflowBuilder("wide", "Wide", input=_Text).parallel(side).build()


def _kernel() -> TestKernel:
    return make_test_kernel(*build_workflows(Script()), _wide())


# Each step: ("run", workflow) is `TestKernel.run`; ("create", workflow) leaves a run PENDING.
Scenario = list[tuple[str, str]]


async def _seen(scenario: Scenario, *, at_create: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every delivered event, and every run, job and stage row (without their ids, which
    a run claimed in its create draws one fewer of), after the steps of `scenario`."""
    with monkeypatch.context() as patched:
        if not at_create:
            patched.setattr(shortcuts, "first_run_taker", lambda *_: None)
        tk = _kernel()
        for kind, workflow_id in scenario:
            if kind == "run":
                assert (await tk.run(workflow_id, DOC)).status is Status.COMPLETED
            else:
                await tk.create_run(workflow_id, DOC)
    persistence = tk.persistence
    assert isinstance(persistence, MemoryPersistence)
    made = persistence.all_runs()  # in creation order (ids sort differently once shifted)
    runs = [(r.workflow_id, r.status, r.started_at, r.output) for r in made]
    jobs = [
        (j.stage_id, j.status, j.attempt, j.worker_id)
        for run in made
        for j in await tk.jobs.jobs_of_run(run.id)
    ]
    rows = [
        (s.stage_id, s.status, s.attempt, s.started_at, s.stage_number)
        for run in made
        for s in await persistence.stages_of_run(run.id)
    ]
    events = [
        (e.event_type, e.sequence, e.published_at)
        for run in made
        for e in await persistence.outbox_of_run(run.id)
    ]
    # Runs named by their creation order: the ids drawn after a run claimed in its create
    # are one behind (no causation id drawn for a claim of its own).
    order = {run.id: str(n) for n, run in enumerate(made)}
    delivered = [
        {**payload, "workflow_run_id": order[payload["workflow_run_id"]]}
        for payload in tk.sink.payloads
    ]
    return delivered, runs, jobs, rows, events


@pytest.mark.parametrize(
    "scenario",
    [
        [("run", "linear")],
        [("run", "linear"), ("run", "linear")],
        [("run", "fanout"), ("run", "linear")],
        [("run", "batch"), ("run", "linear")],
        [("create", "linear"), ("run", "linear")],  # another run open: claimed in the tick
        [("create", "fanout"), ("run", "linear"), ("run", "fanout")],
        [("run", "wide"), ("run", "linear"), ("run", "wide")],
    ],
    ids=str,
)
async def test_a_run_claimed_in_its_create_leaves_the_same_rows_events_and_order(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids are not compared: a run claimed in its create draws one fewer, and its
    `workflow:started` and first `stage:started` name the create as their cause (the
    create's command id) where a claim of their own named the claim."""
    at_create = await _seen(scenario, at_create=True, monkeypatch=monkeypatch)
    assert at_create == await _seen(scenario, at_create=False, monkeypatch=monkeypatch)


async def test_the_create_claims_only_when_nothing_else_is_open() -> None:
    tk = _kernel()
    assert shortcuts.first_run_taker(tk.kernel, "linear", "w") is not None
    assert shortcuts.first_run_taker(tk.kernel, "fanout", "w") is not None
    assert shortcuts.first_run_taker(tk.kernel, "wide", "w") is None  # two stages first
    assert shortcuts.first_run_taker(tk.kernel, "missing", "w") is None
    await tk.create_run("linear", DOC)
    assert shortcuts.first_run_taker(tk.kernel, "linear", "w") is None  # a run PENDING
    await tk.tick()  # claimed: RUNNING, its first job leased
    assert shortcuts.first_run_taker(tk.kernel, "linear", "w") is None


async def test_a_wrapped_dispatch_sees_the_create_and_the_claim() -> None:
    """A test that wraps `kernel.dispatch` (to record commands, or to inject a fault in
    one) must see every command `run` makes, so the create then claims nothing."""
    tk = _kernel()
    seen: list[str] = []
    dispatch = tk.kernel.dispatch

    async def recording(command: Any) -> Any:
        seen.append(type(command).__name__)
        return await dispatch(command)

    tk.kernel.dispatch = recording  # type: ignore[method-assign]
    assert (await tk.run("linear", DOC)).status is Status.COMPLETED
    assert seen[:2] == ["RunCreate", "RunClaimPending"]


async def test_a_run_claimed_in_its_create_saves_the_claim_transaction() -> None:
    """The point of it: one transaction fewer per run (what the first tick's claim took)."""
    counts = [await _transactions_of_a_run(at_create=at_create) for at_create in (True, False)]
    assert counts[0] == counts[1] - 1


async def _transactions_of_a_run(*, at_create: bool) -> int:
    tk = _kernel()
    persistence = tk.persistence
    assert isinstance(persistence, MemoryPersistence)
    opened = 0
    transaction = persistence.transaction

    def counted() -> Any:
        nonlocal opened
        opened += 1
        return transaction()

    persistence.transaction = counted  # type: ignore[method-assign]
    if at_create:
        await tk.run("linear", DOC)
    else:
        await tk.drive(await tk.create_run("linear", DOC))
    return opened
