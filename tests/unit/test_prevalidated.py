"""`prevalidated.maker`: a model built without validation from typed values is the one
pydantic validates, field by field (in order), in its set fields and in its dumps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator

from wfc.runtime.commands import JobExecuteResult, OutboxFlushResult, RunTransitionResult
from wfc.runtime.events import (
    StageCompleted,
    StageSkipped,
    StageStarted,
    WorkflowCompleted,
    WorkflowStarted,
    event_payload,
)
from wfc.runtime.prevalidated import maker

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

# The models the kernel builds with a maker, with values as it passes them.
BUILT: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (
        StageStarted,
        {
            "timestamp": NOW,
            "workflow_run_id": "r",
            "stage_id": "a",
            "stage_name": "A",
            "stage_number": 1,
            "attempt": 2,
        },
    ),
    (
        StageSkipped,
        {
            "timestamp": NOW,
            "workflow_run_id": "r",
            "stage_id": "a",
            "stage_name": "A",
            "reason": "when",
        },
    ),
    (
        StageCompleted,
        {
            "timestamp": NOW,
            "workflow_run_id": "r",
            "stage_id": "a",
            "stage_name": "A",
            "duration_ms": 3,
        },
    ),
    (WorkflowStarted, {"timestamp": NOW, "workflow_run_id": "r"}),
    (
        WorkflowCompleted,
        {
            "timestamp": NOW,
            "workflow_run_id": "r",
            "duration_ms": 9,
            "output": {"n": [1, 2.5, None]},
            "total_cost": 0.0,
            "total_tokens": 0,
        },
    ),
    (JobExecuteResult, {"outcome": "completed", "output": {"n": 1}}),
    (
        JobExecuteResult,
        {
            "outcome": "completed",
            "output": None,
            "transition": RunTransitionResult(action="advanced", next_group=2),
            "job_completed": True,
        },
    ),
    (OutboxFlushResult, {"published": 3, "remaining": False}),
]


@pytest.mark.parametrize(("kind", "values"), BUILT)
def test_a_built_model_is_the_validated_model(
    kind: type[BaseModel], values: dict[str, Any]
) -> None:
    built, validated = maker(kind)(**values), kind(**values)
    assert type(built) is kind and built == validated
    assert list(built.__dict__.items()) == list(validated.__dict__.items())
    assert built.model_fields_set == validated.model_fields_set
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_dump(mode="json", by_alias=True) == validated.model_dump(
        mode="json", by_alias=True
    )
    if kind.__module__ == "wfc.runtime.events":
        assert event_payload(built) == event_payload(validated)  # type: ignore[arg-type]
    if not any(isinstance(value, dict) for value in values.values()):  # else unhashable
        assert hash(built) == hash(validated)
    with pytest.raises(ValidationError):  # frozen, as validated
        built.stage_id = "b"  # type: ignore[attr-defined]


def test_a_missing_or_unknown_field_is_refused() -> None:
    make = maker(WorkflowStarted)
    with pytest.raises(TypeError):
        make(timestamp=NOW)
    with pytest.raises(TypeError):
        make(timestamp=NOW, workflow_run_id="r", nope=1)


class _Validated(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


class _Factory(BaseModel):
    tags: list[str] = Field(default_factory=list)


class _Mutable(BaseModel):
    tags: list[str] = []


class _TypeValidated(BaseModel):
    name: Annotated[str, AfterValidator(str.upper)]


class _Constrained(BaseModel):
    count: int = Field(ge=0)


class _PostInit(BaseModel):
    name: str

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "name", self.name.upper())


@pytest.mark.parametrize(
    "kind",
    [_Validated, _Factory, _Mutable, _TypeValidated, _Constrained, _PostInit],
)
def test_a_model_a_maker_would_build_differently_is_refused(kind: type[BaseModel]) -> None:
    with pytest.raises(TypeError):
        maker(kind)
