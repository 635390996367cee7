"""Errors the database causes are waited out, not charged to the run; one failure never
stops the work beside it (the claim, the transition after a final failure, the poll step)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from tests.kernel.conftest import Script, build_workflows
from tests.kernel.helpers import DOC, run_of, start, step
from wfc.errors import NonRetryableError
from wfc.runtime import RunClaimPending, Status
from wfc.runtime.commands import RunTransition
from wfc.runtime.hosts import steps
from wfc.runtime.kernel import opening
from wfc.runtime.records import RunRecord
from wfc.runtime.transient import is_transient
from wfc.testing import TestKernel, make_test_kernel


class _SqlState(Exception):
    """A driver error carrying a SQLSTATE, as asyncpg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(orig: Exception) -> DBAPIError:
    """`orig` as SQLAlchemy raises it."""
    return DBAPIError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, Exception("database is locked")),
        InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
        _wrapped(_SqlState("40001")),  # serialization failure
        _wrapped(_SqlState("40P01")),  # deadlock
        _wrapped(_SqlState("55P03")),  # lock_timeout
        _wrapped(_SqlState("57P01")),  # admin shutdown
        _wrapped(_SqlState("08006")),  # connection failure
    ],
    ids=repr,
)
def test_the_database_s_passing_trouble_is_transient(error: Exception) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad plan"),
        RuntimeError("disk on fire"),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        _wrapped(_SqlState("23505")),  # unique violation
        _wrapped(_SqlState("42P01")),  # undefined table
    ],
    ids=repr,
)
def test_a_problem_with_the_work_is_not_transient(error: Exception) -> None:
    assert not is_transient(error)


def test_a_transient_error_raised_from_another_is_found() -> None:
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as lost:
            raise RuntimeError("claim failed") from lost
    except RuntimeError as error:
        assert is_transient(error)


@pytest.fixture
def tk() -> TestKernel:
    return make_test_kernel(*build_workflows(Script()))


def _lost_connection() -> OperationalError:
    return OperationalError("INSERT", {}, ConnectionResetError("server closed the connection"))


def _open_group_failing(
    monkeypatch: pytest.MonkeyPatch, failing: set[str], error: Exception
) -> None:
    """The claim of each run in `failing` raises `error` after writing its rows."""
    real = opening.open_group

    async def flaky(deps: Any, unit: Any, run: RunRecord, *args: Any, **kwargs: Any) -> None:
        await real(deps, unit, run, *args, **kwargs)
        if run.id in failing:
            raise error

    monkeypatch.setattr(opening, "open_group", flaky)


async def test_a_transient_error_during_a_claim_leaves_the_run_pending_for_a_later_claim(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await tk.create_run("linear", DOC)
    failing = {run_id}
    _open_group_failing(monkeypatch, failing, _lost_connection())
    with pytest.raises(OperationalError):
        await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    waiting = await run_of(tk, run_id)
    assert (waiting.status, waiting.error) == (Status.PENDING, None)
    assert await tk.persistence.stages_of_run(run_id) == []  # the claim rolled back
    failing.clear()  # the database is back
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    assert [c.workflow_run_id for c in result.claimed] == [run_id]
    assert (await run_of(tk, run_id)).status is Status.RUNNING


async def test_runs_claimed_before_a_transient_error_are_returned_and_the_rest_wait(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await tk.create_run("linear", DOC)
    tk.clock.advance(seconds=1)
    second = await tk.create_run("linear", DOC)
    _open_group_failing(monkeypatch, {second}, _lost_connection())
    result = await tk.kernel.dispatch(RunClaimPending(worker_id="w", max_claims=5))
    assert [c.workflow_run_id for c in result.claimed] == [first]
    assert (await run_of(tk, second)).status is Status.PENDING


async def test_a_deterministic_error_during_a_claim_still_fails_that_run(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await tk.create_run("linear", DOC)
    _open_group_failing(monkeypatch, {run_id}, ValueError("bad plan"))
    await tk.kernel.dispatch(RunClaimPending(worker_id="w"))
    failed = await run_of(tk, run_id)
    assert failed.status is Status.FAILED and failed.error is not None
    assert failed.error["code"] == "CLAIM_FAILED"


def _transitions_failing(tk: TestKernel, monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """The next `times` run transitions raise a lost connection; the runs they were for."""
    real = tk.kernel.dispatch
    failed: list[str] = []

    async def dispatch(command: Any) -> Any:
        if isinstance(command, RunTransition) and len(failed) < times:
            failed.append(command.workflow_run_id)
            raise _lost_connection()
        return await real(command)

    monkeypatch.setattr(tk.kernel, "dispatch", dispatch)
    return failed


async def test_a_transition_after_a_final_failure_is_retried_until_the_run_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = Script()
    tk = make_test_kernel(*build_workflows(script))
    script.then("split", NonRetryableError("bad document"))
    run_id = await start(tk, "linear")
    monkeypatch.setattr(steps, "FINAL_TRANSITION_BACKOFF", timedelta(0))
    failed = _transitions_failing(tk, monkeypatch, times=2)
    outcome = await step(tk)
    assert outcome.outcome == "failed" and not outcome.retried
    assert failed == [run_id, run_id]
    ended = await run_of(tk, run_id)
    assert ended.status is Status.FAILED and ended.error is not None
    assert "bad document" in ended.error["message"]


async def test_the_stuck_run_reaper_ends_a_run_whose_final_transition_never_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = Script()
    tk = make_test_kernel(*build_workflows(script))
    script.then("split", NonRetryableError("bad document"))
    run_id = await start(tk, "linear")
    monkeypatch.setattr(steps, "FINAL_TRANSITION_BACKOFF", timedelta(0))
    _transitions_failing(tk, monkeypatch, times=steps.FINAL_TRANSITION_ATTEMPTS)
    await step(tk)
    assert (await run_of(tk, run_id)).status is Status.RUNNING  # the database never came back
    tk.clock.advance(tk.settings.stuck_threshold + timedelta(seconds=1))
    tick = await tk.tick()
    assert tick.stuck_reaped == 1
    assert (await run_of(tk, run_id)).status is Status.FAILED


async def test_one_failing_transition_in_the_poll_step_does_not_skip_the_others(
    tk: TestKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = {await start(tk, "batch"), await start(tk, "batch")}
    await step(tk)
    await step(tk)  # both stages suspended
    real = tk.kernel.dispatch
    transitioned: list[str] = []

    async def dispatch(command: Any) -> Any:
        if isinstance(command, RunTransition):
            transitioned.append(command.workflow_run_id)
            if len(transitioned) == 1:
                raise _lost_connection()
        return await real(command)

    monkeypatch.setattr(tk.kernel, "dispatch", dispatch)
    ticks = []
    for _ in range(2):  # `check` is ready on its second poll
        tk.clock.advance(timedelta(minutes=1))
        ticks.append(await tk.tick())
    assert sorted(transitioned) == sorted(runs)  # the second was transitioned after all
    assert ticks[-1].errors == ["poll"]
