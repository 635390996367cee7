"""Evaluating `when` conditions: values, nulls, and what a hand-built plan gets wrong."""

from __future__ import annotations

from typing import Any

import pytest

from wfc.plan import Condition
from wfc.runtime import all_of, any_of, negate, when
from wfc.runtime.conditions import ConditionError, holds

INPUT = {"score": 0.5, "tags": ["a", "b"], "name": "ada", "flag": True, "nested": {"n": 3}}
OUTPUTS: dict[str, Any] = {"classify": {"label": "spam", "pages": [1, 2, 3]}}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (when.input.score < 0.8, True),
        (when.input.score >= 0.8, False),
        (when.input.name == "ada", True),
        (when.input.name != "ada", False),
        (when.input.nested.n > 2, True),
        (when.classify.label.is_in(["spam", "unsure"]), True),
        (when.input.tags.length() == 2, True),
        (when.classify.pages.length() > 3, False),
        (when.input.flag.truthy(), True),
        (all_of(when.input.score < 1, when.classify.label == "spam"), True),
        (any_of(when.input.score > 1, when.classify.label == "ham"), False),
        (negate(when.input.score > 1), True),
        (
            Condition(
                op="in", args=(Condition(op="literal", value="d"), when.input.name._as_condition())
            ),
            True,
        ),
    ],
)
def test_conditions_hold_as_written(condition: Condition, expected: bool) -> None:
    assert holds(condition, INPUT, OUTPUTS) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (when.skipped.label == "spam", False),  # a skipped stage reads as null
        (when.skipped.label == None, True),  # noqa: E711 (builds a condition, not a test)
        (when.input.missing < 3, False),  # an order comparison with null is false
        (when.input.missing.is_in(["x"]), False),
        (when.input.name.is_in(when.skipped.names), False),
        (when.skipped.pages.length() == 0, True),
        (negate(when.skipped.flag.truthy()), True),
        (when.skipped.flag._as_condition(), False),  # null as a whole does not hold
    ],
)
def test_missing_values_read_as_null(condition: Condition, expected: bool) -> None:
    assert holds(condition, INPUT, OUTPUTS) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (when.input.name > 3, "cannot order str 'ada' and int 3"),
        (when.input.flag < True, "cannot order bool True and bool True"),
        (when.input.score.length() == 1, "`len` takes a list, a map or a string, got float 0.5"),
        (when.input.name.is_in(when.input.score), "`in` takes a list, a map or a string"),
        (negate(when.input.score._as_condition()), "`not` takes true or false, got float 0.5"),
        (when.input.score._as_condition(), "the condition gives float 0.5, not true or false"),
    ],
)
def test_a_condition_that_cannot_be_evaluated_says_why(condition: Condition, message: str) -> None:
    with pytest.raises(ConditionError, match=message.replace("(", r"\(")):
        holds(condition, INPUT, OUTPUTS)


def test_conditions_are_plan_data_that_round_trips() -> None:
    condition = all_of(when.input.score < 0.8, when.classify.label.is_in(["spam"]))
    again = Condition.model_validate_json(condition.model_dump_json())
    assert again == condition and again.roots() == {"input", "classify"}
    with pytest.raises(ValueError, match="takes 2 operand"):
        Condition(op="eq", args=(condition,))
