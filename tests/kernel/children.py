"""Workflows that run other workflows as child runs, built in Python: a placeholder stage is
defined and its plan given the child stage's fields (as `tests.kernel.waiting` does for
sleeps and signal waits; the language front end comes later)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from tests.kernel.waiting import waiting
from wfc.plan import CHILD_IMPLEMENTATION, ChildWorkflow, RetryPolicy
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.workflow import Workflow


class Number(BaseModel):
    n: int


class Summary(BaseModel):
    text: str


@dataclass
class Faults:
    """How many more times the child stage `double` fails, and how often it ran."""

    failures: int = 0
    calls: Counter[str] = field(default_factory=Counter)


def _builtin(ctx: Any) -> Any:
    raise AssertionError("a built-in stage runs no user code")


def child_stage(
    stage_id: str, workflow_id: str, *, retry: RetryPolicy | None = None
) -> dict[str, Any]:
    """The plan fields that make a placeholder stage a child stage running `workflow_id`."""
    fields: dict[str, Any] = {
        "child": ChildWorkflow(workflow_id=workflow_id),
        "implementation": CHILD_IMPLEMENTATION,
    }
    if retry is not None:
        fields["retry"] = retry
    return {stage_id: fields}


def doubler(faults: Faults, workflow_id: str = "doubler") -> Workflow:
    """The child: `double` outputs `{n: 2n}` (failing while `faults.failures` lasts)."""

    def double(ctx: Any) -> Number:
        faults.calls["double"] += 1
        if faults.failures > 0:
            faults.failures -= 1
            raise RuntimeError("double broke")
        return Number(n=ctx.input.n * 2)

    no_retry = RetryPolicy(max_attempts=1)
    return (
        WorkflowBuilder(workflow_id, "Doubler", input=Number)
        .pipe(
            define_stage(id="double", input=Number, output=Number, execute=double, retry=no_retry)
        )
        .build()
    )


def _prep(ctx: Any) -> Number:
    return Number(n=ctx.input.n + 1)


def _finish(ctx: Any) -> Summary:
    doubled = Number.model_validate(ctx.require("call"))  # the child's output, typed
    return Summary(text=f"got {doubled.n}")


def parent(
    workflow_id: str = "parent",
    child_id: str = "doubler",
    *,
    retry: RetryPolicy | None = None,
) -> Workflow:
    """`prep` ({n: n+1}) → `call` (runs `child_id` on it) → `finish` ({text: "got …"})."""
    built = (
        WorkflowBuilder(workflow_id, "Parent", input=Number)
        .pipe(define_stage(id="prep", input=Number, output=Number, execute=_prep))
        .pipe(define_stage(id="call", input=Number, output=Number, execute=_builtin))
        .pipe(define_stage(id="finish", output=Summary, execute=_finish, needs=["call"]))
        .build()
    )
    return waiting(built, **child_stage("call", child_id, retry=retry))


def relay(
    workflow_id: str,
    child_id: str,
    output: type[BaseModel] = Number,
    *,
    retry: RetryPolicy | None = None,
) -> Workflow:
    """A workflow whose one stage, `again`, runs `child_id` (its output is the child's)."""
    built = (
        WorkflowBuilder(workflow_id, "Relay", input=Number)
        .pipe(define_stage(id="again", input=Number, output=output, execute=_builtin))
        .build()
    )
    return waiting(built, **child_stage("again", child_id, retry=retry))


FAST = RetryPolicy(max_attempts=2, backoff_initial_ms=5_000)


def workflows(faults: Faults) -> list[Workflow]:
    """`doubler` (the child), `parent` (retry: 2 attempts, 5 s apart), `grandparent`
    (runs `parent`), `orphan` (runs a workflow nobody serves), and `ping` and `pong`, each
    running the other (a cycle the compiler would refuse)."""
    return [
        doubler(faults),
        parent(retry=FAST),
        relay("grandparent", "parent", Summary),
        parent("orphan", "nobody"),
        relay("ping", "pong", retry=RetryPolicy(max_attempts=3, backoff_initial_ms=0)),
        relay("pong", "ping", retry=RetryPolicy(max_attempts=3, backoff_initial_ms=0)),
    ]
