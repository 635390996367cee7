"""`run.create`: validation, parsed storage, idempotency."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from pydantic import ValidationError

from tests.kernel.helpers import DOC, event_types, run_of
from wfc.errors import (
    ConfigValidationError,
    IdempotencyInProgressError,
    InvalidRunInputError,
    UnknownCommandError,
    WorkflowNotFoundError,
)
from wfc.runtime import RunCreate, Status
from wfc.testing import MemoryPersistence, TestKernel


async def test_creates_a_pending_run_with_parsed_input_and_config(tk: TestKernel) -> None:
    result = await tk.kernel.dispatch(
        RunCreate(
            idempotency_key="k1", workflow_id="linear", input=DOC, config={"split": {"limit": 2}}
        )
    )
    run = await run_of(tk, result.workflow_run_id)
    assert result.status == "PENDING"
    assert run.status is Status.PENDING
    assert run.input == {"text": "the quick brown fox", "language": "en"}
    assert run.config["split"] == {"lowercase": False, "limit": 2}
    assert run.config["count"] == {}
    assert run.priority == 5
    workflow = tk.registry.get("linear")
    assert workflow is not None and run.plan_fingerprint == workflow.plan.fingerprint
    assert await event_types(tk, run.id) == ["workflow:created"]
    assert (await tk.all_jobs()) == []


async def test_bad_input_is_refused_with_every_failing_field_and_nothing_is_stored(
    tk: TestKernel,
) -> None:
    with pytest.raises(InvalidRunInputError) as caught:
        await tk.kernel.dispatch(
            RunCreate(idempotency_key="k1", workflow_id="linear", input={"text": "", "language": 3})
        )
    assert caught.value.problems == [
        "text: String should have at least 1 character",
        "language: Input should be a valid string",
    ]
    assert (await tk.all_runs()) == [] and (await tk.all_outbox()) == []
    # The key was released: the corrected request goes through under the same key.
    fixed = await tk.kernel.dispatch(
        RunCreate(idempotency_key="k1", workflow_id="linear", input=DOC)
    )
    assert (await run_of(tk, fixed.workflow_run_id)).status is Status.PENDING


async def test_bad_config_names_each_stage_and_field(tk: TestKernel) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        await tk.kernel.dispatch(
            RunCreate(
                idempotency_key="k",
                workflow_id="linear",
                input=DOC,
                config={"split": {"limit": 0}, "nope": {}},
            )
        )
    assert caught.value.problems == {
        "nope": ["no such stage in this workflow"],
        "split": ["limit: Input should be greater than or equal to 1"],
    }
    assert (await tk.all_runs()) == []


async def test_unknown_workflow(tk: TestKernel) -> None:
    with pytest.raises(WorkflowNotFoundError, match="Workflow ghost not found in registry"):
        await tk.kernel.dispatch(RunCreate(idempotency_key="k", workflow_id="ghost"))


async def test_same_key_replays_the_first_result_without_a_second_run(tk: TestKernel) -> None:
    first = await tk.kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="linear", input=DOC)
    )
    again = await tk.kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="linear", input=DOC)
    )
    assert again == first
    assert len(await tk.all_runs()) == 1
    assert await event_types(tk, first.workflow_run_id) == ["workflow:created"]


async def test_concurrent_creates_with_one_key_make_one_run(tk: TestKernel) -> None:
    cmd = RunCreate(idempotency_key="k", workflow_id="linear", input=DOC)
    results = await asyncio.gather(
        *(tk.kernel.dispatch(cmd) for _ in range(5)), return_exceptions=True
    )
    runs = {r.workflow_run_id for r in results if not isinstance(r, BaseException)}
    assert len(runs) == 1 and len(await tk.all_runs()) == 1
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, IdempotencyInProgressError) for r in refused)
    if isinstance(tk.persistence, MemoryPersistence):
        # Memory transactions yield at the same point every time, so the race is certain there;
        # on a database the later callers may as well arrive after the first finished (replay).
        assert refused


async def test_a_key_in_progress_is_refused_until_it_goes_stale(tk: TestKernel) -> None:
    # A crashed caller left the key in progress.
    await tk.persistence.acquire_idempotency_key("k", "run.create", tk.clock.now(), None)
    cmd = RunCreate(idempotency_key="k", workflow_id="linear", input=DOC)
    with pytest.raises(
        IdempotencyInProgressError, match=re.escape('"run.create" with idempotency key "k"')
    ):
        await tk.kernel.dispatch(cmd)
    tk.clock.advance(timedelta(minutes=10))
    result = await tk.kernel.dispatch(cmd)
    assert (await run_of(tk, result.workflow_run_id)).status is Status.PENDING


async def test_keys_are_scoped_by_command_type(tk: TestKernel) -> None:
    await tk.persistence.acquire_idempotency_key("k", "job.execute", tk.clock.now(), None)
    result = await tk.kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="linear", input=DOC)
    )
    assert result.status == "PENDING"


async def test_dicts_json_and_camel_case_are_accepted(tk: TestKernel) -> None:
    from_dict = await tk.kernel.dispatch(
        {"type": "run.create", "idempotencyKey": "a", "workflowId": "linear", "input": DOC}
    )
    from_json = await tk.kernel.dispatch(
        '{"type": "run.create", "idempotency_key": "b", "workflow_id": "linear", "input": {"text": "x"}}'
    )
    assert len({from_dict.workflow_run_id, from_json.workflow_run_id}) == 2  # type: ignore[attr-defined]
    with pytest.raises(UnknownCommandError, match=re.escape("Unknown command type: run.explode")):
        await tk.kernel.dispatch({"type": "run.explode"})


async def test_priority_and_caller_supplied_id(tk: TestKernel) -> None:
    result = await tk.kernel.dispatch(
        RunCreate(idempotency_key="k", workflow_id="linear", input=DOC, priority=9, run_id="run-42")
    )
    assert result.workflow_run_id == "run-42"
    assert (await run_of(tk, "run-42")).priority == 9


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priority", 2**31),
        ("priority", -(2**31) - 1),
        ("idempotency_key", ""),
        ("idempotency_key", "k" * 201),
    ],
)
def test_values_a_database_would_refuse_are_refused_when_the_command_is_made(
    field: str, value: object
) -> None:
    fields: dict[str, object] = {"idempotency_key": "k", "workflow_id": "linear", field: value}
    with pytest.raises(ValidationError, match=field):
        RunCreate.model_validate(fields)
    edge = 2**31 - 1 if field == "priority" else "k" * 200
    assert RunCreate.model_validate({**fields, field: edge})


async def test_a_key_reused_for_another_input_is_refused_naming_it(tk: TestKernel) -> None:
    from wfc.errors import IdempotencyKeyReusedError
    from wfc.runtime import RunCreate

    first = await tk.kernel.dispatch(
        RunCreate(idempotency_key="order-7", workflow_id="linear", input=DOC)
    )
    again = await tk.kernel.dispatch(
        RunCreate(idempotency_key="order-7", workflow_id="linear", input=DOC)
    )
    assert again.workflow_run_id == first.workflow_run_id  # the same request: its run back
    other = {**DOC, "text": DOC["text"] + " and more"}
    with pytest.raises(IdempotencyKeyReusedError, match='key "order-7" already created run'):
        await tk.kernel.dispatch(
            RunCreate(idempotency_key="order-7", workflow_id="linear", input=other)
        )
    assert len(await tk.all_runs()) == 1


async def test_an_unknown_input_field_is_refused_with_the_closest_one(tk: TestKernel) -> None:
    from wfc.errors import InvalidRunInputError
    from wfc.runtime import RunCreate

    misspelled = RunCreate(
        idempotency_key="typo", workflow_id="linear", input={**DOC, "languag": "fr"}
    )
    with pytest.raises(InvalidRunInputError) as refused:
        await tk.kernel.dispatch(misspelled)
    assert refused.value.problems == [
        "languag: not a field of the input (did you mean 'language'?)"
    ]
    assert await tk.all_runs() == []
