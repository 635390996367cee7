from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from wfc.plan import InputSource, Plan, PlanStage, PollPolicy, RetryPolicy, StageKind


def _stage(sid: str, **kw: object) -> PlanStage:
    return PlanStage(id=sid, name=sid.title(), implementation=f".stages.{sid}:{sid.title()}", **kw)


def _plan() -> Plan:
    return Plan(
        workflow_id="w",
        name="W",
        stages=(
            _stage("a", config_defaults={"n": 1.5}),
            _stage("b", needs=("a",)),
            _stage(
                "c",
                kind=StageKind.ASYNC,
                poll=PollPolicy(),
                input_source=InputSource.STAGE,
                input_from="a",
            ),
        ),
        groups=(("a",), ("b", "c")),
    ).with_fingerprint()


def test_round_trips_byte_for_byte() -> None:
    text = _plan().to_json()
    assert Plan.from_json(text).to_json() == text


def test_fingerprint_changes_with_content_and_verifies() -> None:
    plan = _plan()
    assert plan.fingerprint.startswith("sha256:") and plan.verify_fingerprint()
    changed = plan.model_copy(update={"name": "Other"})
    assert not changed.verify_fingerprint()
    assert changed.with_fingerprint().fingerprint != plan.fingerprint


def test_hand_edited_plan_is_detected() -> None:
    data = json.loads(_plan().to_json())
    data["stages"][0]["retry"]["max_attempts"] = 9
    assert not Plan.model_validate(data).verify_fingerprint()


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ((("a",), ("b",)), "in no execution group"),
        ((("a", "b", "c"),), "does not run earlier"),
        ((("a",), ("a", "b", "c")), "more than one group"),
        ((("a",), ("b", "c", "x")), "unknown stage"),
        ((("a",), (), ("b", "c")), "is empty"),
    ],
)
def test_structure_is_validated(groups: tuple[tuple[str, ...], ...], message: str) -> None:
    plan = _plan()
    with pytest.raises(ValidationError, match=message):
        Plan(workflow_id="w", name="W", stages=plan.stages, groups=groups)


def test_queries() -> None:
    plan = _plan()
    assert plan.stage_ids() == ["a", "b", "c"]
    assert plan.execution_group("c") == 2
    assert plan.default_config() == {"a": {"n": 1.5}, "b": {}, "c": {}}
    with pytest.raises(KeyError):
        plan.stage("zzz")


def test_poll_policy_only_on_async_stages() -> None:
    with pytest.raises(ValidationError, match="only async stages"):
        _stage("a", poll=PollPolicy())


@given(st.integers(1, 20), st.integers(0, 10_000), st.floats(1.0, 5.0), st.integers(0, 100_000))
def test_backoff_is_monotonic_and_capped(attempt: int, initial: int, mult: float, cap: int) -> None:
    policy = RetryPolicy(backoff_initial_ms=initial, backoff_multiplier=mult, backoff_max_ms=cap)
    assert policy.delay_ms(attempt) <= cap
    assert (
        policy.delay_ms(attempt) <= policy.delay_ms(attempt + 1) or policy.delay_ms(attempt) == cap
    )
