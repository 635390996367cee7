"""`Workflow.parse_config` keeps a stage's default config parsed when parsing it runs no
code of the model's own, and `unknown_fields` keeps a model's declared names: each run
is given what parsing afresh would give, as a copy of its own."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import BaseModel, Field, computed_field, field_validator

from wfc.errors import ConfigValidationError
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.workflow import Workflow, _repeatable, unknown_fields

_counter = itertools.count()


class Plain(BaseModel):
    n: int = 1
    names: list[str] = Field(default_factory=list)
    nested: dict[str, int] = Field(default_factory=lambda: {"a": 1})


class Simple(BaseModel):
    limit: int = 3
    tags: list[str] = Field(default_factory=list)


class Drawn(BaseModel):
    ticket: int = Field(default_factory=lambda: next(_counter))


class Checked(BaseModel):
    n: int = 0

    @field_validator("n")
    @classmethod
    def _count(cls, value: int) -> int:
        return value + next(_counter)


class Computed(BaseModel):
    n: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drawn(self) -> int:
        return next(_counter)


class Inner(BaseModel):
    n: int = 0

    @field_validator("n")
    @classmethod
    def _count(cls, value: int) -> int:
        return value + next(_counter)


class Outer(BaseModel):
    inner: Inner = Inner()


class Aliased(BaseModel):
    full_name: str = Field(default="x", alias="fullName")


class Out(BaseModel):
    n: int = 0


async def _noop(ctx: object) -> Out:
    return Out()


def _workflow(**models: type[BaseModel]) -> Workflow:
    builder = WorkflowBuilder("cfg", "config defaults")
    for stage_id, model in models.items():
        builder = builder.pipe(define_stage(id=stage_id, config=model, output=Out, execute=_noop))
    return builder.build()


def test_repeatable_models() -> None:
    assert _repeatable(Simple)
    assert not _repeatable(Plain)  # a default factory that is not an empty container's
    assert not _repeatable(Drawn)
    assert not _repeatable(Checked)
    assert not _repeatable(Computed)
    assert not _repeatable(Outer)  # a validator in a nested model


MODELS: dict[str, type[BaseModel]] = {
    "simple": Simple,
    "plain": Plain,
    "drawn": Drawn,
    "checked": Checked,
}


def test_each_run_gets_what_parsing_afresh_gives() -> None:
    kept = _workflow(**MODELS, computed=Computed, outer=Outer)
    for _ in range(3):
        fresh = _workflow(**MODELS, computed=Computed, outer=Outer)
        first, second = kept.parse_config({}), fresh.parse_config({})
        for sid in ("simple", "plain"):
            assert first[sid] == second[sid]
    # The models that run code of their own are parsed on every call. (A default factory
    # ran when the plan was built: its default config holds what it made.)
    a, b = kept.parse_config({}), kept.parse_config({})
    for sid in ("checked", "computed", "outer"):
        assert a[sid] != b[sid], sid


def test_each_run_gets_a_copy_of_its_own() -> None:
    workflow = _workflow(simple=Simple)
    for _ in range(3):  # the first run's, parsed; then the kept one's copies
        given = workflow.parse_config({})
        assert given == {"simple": {"limit": 3, "tags": []}}
        given["simple"]["tags"].append("changed")
        given["simple"]["limit"] = 99


def test_given_config_is_parsed_not_the_default() -> None:
    workflow = _workflow(simple=Simple)
    workflow.parse_config({})
    assert workflow.parse_config({"simple": {"limit": 7}}) == {"simple": {"limit": 7, "tags": []}}
    with pytest.raises(ConfigValidationError):
        workflow.parse_config({"simple": {"limit": "many"}})
    assert workflow.parse_config({}) == {"simple": {"limit": 3, "tags": []}}


def test_a_swapped_model_is_seen() -> None:
    workflow = _workflow(simple=Simple)
    workflow.parse_config({})

    class Wider(BaseModel):
        limit: int = 5
        wide: int = 5

    workflow.implementations["simple"].config_model = Wider
    try:
        assert workflow.parse_config({}) == {"simple": {"limit": 3, "wide": 5}}
    finally:
        workflow.implementations["simple"].config_model = Simple


def test_unknown_fields_named_with_a_hint() -> None:
    assert unknown_fields(Aliased, {"fullName": "y"}) == []
    assert unknown_fields(Aliased, {"full_name": "y"}) == []
    problems: list[Any] = unknown_fields(Aliased, {"fullname": "y", "full_name": "z"})
    assert problems == ["fullname: not a field of the input (did you mean 'full_name'?)"]
    assert unknown_fields(Aliased, {"zzz": 1}) == [
        "zzz: not a field of the input (fields: fullName, full_name)"
    ]
