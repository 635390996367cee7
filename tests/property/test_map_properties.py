"""Hypothesis: a mapped stage gathers what a plain loop over the same items would.

Random item counts, `at most` limits, failure policies and failure patterns
(items that fail once and then succeed, items that always fail), with
deliveries interleaved in random order and leases taken back mid-item: the
run ends as the loop says it must (COMPLETED with the loop's results in item
order, or FAILED on the first item that fails for good under `fail`), every
item counts once, and no item of a run that ended is left running.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from wfc.plan import InputSource, ItemFailure, MapSpec, RetryPolicy
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.records import Status
from wfc.testing import make_test_kernel


class Number(BaseModel):
    n: int


class Numbers(BaseModel):
    numbers: list[Number]


class Squared(BaseModel):
    square: int


# Every delivery counts an attempt, a lease taken back too: enough that the leases this
# test takes back never use up an item's attempts.
MAX_ATTEMPTS = 50
calls: Counter[int] = Counter()
flaky: set[int] = set()
broken: set[int] = set()


def square(ctx: Any) -> Squared:
    index = ctx.item_index
    calls[index] += 1
    if index in broken:
        raise ValueError(f"bad item {index}")
    if index in flaky and calls[index] == 1:
        raise ConnectionError("try again")
    return Squared(square=ctx.input.n * ctx.input.n)


def _workflow(at_most: int, policy: ItemFailure) -> Any:
    stage = define_stage(
        id="square",
        input=Number,
        output=Squared,
        execute=square,
        retry=RetryPolicy(max_attempts=MAX_ATTEMPTS, backoff_initial_ms=0),
    )
    plan = stage.plan.model_copy(
        update={
            "map": MapSpec(over=("input", "numbers"), at_most=at_most, on_item_failure=policy),
            "input_source": InputSource.ITEM,
        }
    )
    return (
        WorkflowBuilder("squares", "Squares", input=Numbers).pipe(replace(stage, plan=plan)).build()
    )


def _loop(numbers: list[int], policy: ItemFailure) -> tuple[Status, Any]:
    """What a plain loop over the items gives: the expected status and output."""
    results: list[Any] = []
    for index, n in enumerate(numbers):
        if index in broken:
            if policy is ItemFailure.FAIL:
                return Status.FAILED, None
            results.append(
                {"index": index, "output": None, "error": f"ValueError: bad item {index}"}
            )
        elif policy is ItemFailure.FAIL:
            results.append({"square": n * n})
        else:
            results.append({"index": index, "output": {"square": n * n}, "error": None})
    return Status.COMPLETED, results


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    numbers=st.lists(st.integers(-50, 50), max_size=30),
    at_most=st.integers(1, 6),
    policy=st.sampled_from(list(ItemFailure)),
    flaky_items=st.sets(st.integers(0, 29), max_size=6),
    broken_items=st.sets(st.integers(0, 29), max_size=3),
    seed=st.integers(0, 2**16),
)
def test_a_map_gathers_what_a_loop_would(
    numbers: list[int],
    at_most: int,
    policy: ItemFailure,
    flaky_items: set[int],
    broken_items: set[int],
    seed: int,
) -> None:
    calls.clear()
    flaky.clear()
    broken.clear()
    flaky.update(flaky_items)
    broken.update(i for i in broken_items if i < len(numbers))
    asyncio.run(_check(numbers, at_most, policy, random.Random(seed)))


async def _check(numbers: list[int], at_most: int, policy: ItemFailure, rng: random.Random) -> None:
    tk = make_test_kernel(_workflow(at_most, policy))
    run_id = await tk.create_run("squares", {"numbers": [{"n": n} for n in numbers]})
    await tk.tick()
    for _ in range(200):
        run = await tk.persistence.get_run(run_id)
        assert run is not None
        if run.status is not Status.RUNNING:
            break
        if rng.random() < 0.15:  # a worker lost its lease mid-item: the job comes back
            for job in await tk.jobs.dequeue(1, run_id=run_id):
                await tk.jobs.release(job.id, attempt=job.attempt)
        if not await tk.work(max_jobs=rng.randint(1, 3)):
            await tk.tick()
    run = await tk.drive(run_id)
    expected_status, expected_output = _loop(numbers, policy)
    assert run.status is expected_status, (run.status, run.error)
    if expected_status is Status.COMPLETED:
        assert _failed_as_flags(run.output) == _failed_as_flags(expected_output)
        rows = await tk.persistence.stages_of_run(run_id)
        assert (rows[0].items_done + rows[0].items_failed) == len(numbers)
    items = await tk.persistence.items_of_stage(run_id, "square")
    assert all(item.status is not Status.RUNNING for item in items)
    assert len({item.item_index for item in items}) == len(items)
    # Each item ran as often as its failures say: once, twice when flaky, every attempt when
    # broken; under `fail`, items after a broken one may not have run at all.
    for index in range(len(numbers)):
        expected = MAX_ATTEMPTS if index in broken else 2 if index in flaky else 1
        if expected_status is Status.FAILED or index in broken:
            assert calls[index] <= expected, (index, calls[index])
        else:
            assert calls[index] == expected, (index, calls[index])


def _failed_as_flags(output: Any) -> Any:
    """The output with each item's error reduced to whether there is one: a broken item's
    error is its own, or `AttemptsExhausted` when taken-back leases used its attempts up."""
    if not isinstance(output, list):
        return output
    return [
        {**result, "error": result["error"] is not None} if "index" in result else result
        for result in output
    ]
