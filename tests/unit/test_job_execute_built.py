"""`steps._job_execute`: a job's `JobExecute` built without validation is the validated
one, and values validation would change or refuse are still validated."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from wfc.runtime.commands import JobExecute
from wfc.runtime.hosts.steps import _MAKE_JOB_EXECUTE, _job_execute
from wfc.runtime.prevalidated import maker

JOB: dict[str, Any] = {
    "workflow_run_id": "run-1",
    "workflow_id": "seq3",
    "stage_id": "add_one",
    "config": {"add_one": {"n": 1, "nested": {"k": [1, 2]}}, "double": {}},
    "attempt": 1,
    "idempotency_key": None,
    "transition": True,
    "job_id": "job-1",
    "item": None,
    "generation": 0,
    "concurrency_key": None,
}

VARIANTS: list[dict[str, Any]] = [
    {},
    {"attempt": 3, "item": 0, "generation": 2},
    {"idempotency_key": "job:j:attempt:1", "job_id": None, "concurrency_key": "tenant-a"},
    {"config": {}},
    {"item": 41, "transition": False},
]


def _same(made: JobExecute, validated: JobExecute) -> None:
    assert type(made) is JobExecute
    assert made == validated
    assert list(made.__dict__.items()) == list(validated.__dict__.items())
    assert made.model_fields_set == validated.model_fields_set
    assert made.model_dump(mode="json", by_alias=True) == validated.model_dump(
        mode="json", by_alias=True
    )
    assert made.model_dump_json() == validated.model_dump_json()


@pytest.mark.parametrize("change", VARIANTS)
def test_built_is_validated(change: dict[str, Any]) -> None:
    values = JOB | change
    made = _job_execute(**values)
    _same(made, JobExecute(**values))


def test_the_job_values_take_the_built_path() -> None:
    """What the kernel queues does not go through pydantic (else nothing was saved)."""
    made = _job_execute(**JOB)
    assert made.config is JOB["config"]  # validation would have copied it


REFUSED: list[dict[str, Any]] = [
    {"attempt": 0},
    {"item": -1},
    {"generation": -1},
    {"config": {"add_one": "not a dict"}},
    {"config": ["add_one"]},
    {"workflow_run_id": None},
    {"stage_id": 3},
    {"job_id": 7},
    {"idempotency_key": 7},
    {"concurrency_key": 7},
]


@pytest.mark.parametrize("change", REFUSED)
def test_what_validation_refuses_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        JobExecute(**(JOB | change))
    with pytest.raises(ValidationError):
        _job_execute(**(JOB | change))


CONVERTED: list[dict[str, Any]] = [
    {"attempt": 2.0},
    {"generation": True},
    {"transition": 1},
    {"config": {"add_one": {1: "a"}}},
    {"config": {1: {}}},
    {"config": {"add_one": {}, "double": {"n": 1, 2: "b"}}},  # the bad slice not the first
]


@pytest.mark.parametrize("change", CONVERTED)
def test_what_validation_converts_or_refuses_is_left_to_it(change: dict[str, Any]) -> None:
    """A value of another type goes to pydantic, which converts or refuses it as before."""
    values = JOB | change
    try:
        validated = JobExecute(**values)
    except ValidationError as refused:
        with pytest.raises(ValidationError) as again:
            _job_execute(**values)
        assert again.value.errors() == refused.errors()
        return
    made = _job_execute(**values)
    _same(made, validated)
    assert made.config is not JOB["config"] or change.keys() != {"config"}


def test_checked_fields_must_be_fields() -> None:
    with pytest.raises(TypeError, match="no fields"):
        maker(JobExecute, checked=frozenset({"attempts"}))


def test_unchecked_constraints_are_still_refused() -> None:
    with pytest.raises(TypeError, match="constrained"):
        maker(JobExecute, checked=frozenset({"config"}))


def test_checked_fields_are_required_keywords() -> None:
    with pytest.raises(TypeError):
        _MAKE_JOB_EXECUTE(**{k: v for k, v in JOB.items() if k != "generation"})
