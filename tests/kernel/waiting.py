"""Workflows with built-in stages (a sleep, a signal wait), built in Python the low-level
way: a placeholder stage is defined and its plan given the built-in's fields
(`waiting`), so these tests pin the plan fields the kernel runs, whatever front end
(`.wf`, YAML, `sleep_stage`/`wait_stage`) makes them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from wfc.plan import (
    SIGNAL_IMPLEMENTATION,
    SLEEP_IMPLEMENTATION,
    Plan,
    SignalSpec,
    SignalTimeout,
    SignalWait,
    SleepSpec,
)
from wfc.runtime import WorkflowBuilder, define_stage
from wfc.runtime.adapters.memory.clock import SequentialIds
from wfc.runtime.adapters.memory.events import CollectingEventSink
from wfc.runtime.kernel import Kernel
from wfc.runtime.registry import WorkflowMap
from wfc.runtime.workflow import Workflow
from wfc.testing import TestKernel

HOUR_MS = 3_600_000

APPROVAL = SignalSpec(
    name="approve",
    payload_schema={
        "type": "object",
        "properties": {"approved": {"type": "boolean"}, "by": {"type": "string", "minLength": 1}},
        "required": ["approved", "by"],
        "additionalProperties": False,
    },
)


class Ask(BaseModel):
    text: str
    at: str | None = None


class Draft(BaseModel):
    text: str


class Woke(BaseModel):
    woke_at: str


class Decision(BaseModel):
    approved: bool
    by: str


class Published(BaseModel):
    summary: str


def _draft(ctx: Any) -> Draft:
    return Draft(text=ctx.input.text.upper())


def _builtin(ctx: Any) -> Any:
    raise AssertionError("a built-in stage runs no user code")


def _after_nap(ctx: Any) -> Published:
    return Published(
        summary=f"{ctx.require('draft')['text']} after {ctx.require('nap')['woke_at']}"
    )


def _publish(ctx: Any) -> Published:
    decision = ctx.optional("approve")
    if decision is None:
        return Published(summary="nobody answered")
    return Published(
        summary=f"{'approved' if decision['approved'] else 'refused'} by {decision['by']}"
    )


def waiting(
    workflow: Workflow, *, signals: tuple[SignalSpec, ...] = (), **builtins: dict[str, Any]
) -> Workflow:
    """`workflow` with `signals` declared and the placeholder stages named in `builtins`
    given those plan fields (validated, fingerprinted), their classes dropped."""
    data = workflow.plan.model_dump()
    data["signals"] = [signal.model_dump() for signal in signals]
    for stage in data["stages"]:
        stage.update(builtins.get(stage["id"], {}))
    plan = Plan.model_validate(data).with_fingerprint()
    classes = {
        sid: cls for sid, cls in workflow.implementations.items() if not plan.stage(sid).builtin
    }
    return Workflow(plan, classes, input_model=workflow.input_model)


def sleepy(sleep: SleepSpec) -> Workflow:
    """`draft` → `nap` (the sleep) → `after`."""
    built = (
        WorkflowBuilder("sleepy", "Sleepy", input=Ask)
        .pipe(define_stage(id="draft", input=Ask, output=Draft, execute=_draft))
        .pipe(define_stage(id="nap", output=Woke, execute=_builtin))
        .pipe(
            define_stage(id="after", output=Published, execute=_after_nap, needs=["draft", "nap"])
        )
        .build()
    )
    return waiting(built, nap={"sleep": sleep, "implementation": SLEEP_IMPLEMENTATION})


def approval(
    workflow_id: str = "approval",
    *,
    timeout_ms: int | None = HOUR_MS,
    on_timeout: SignalTimeout = SignalTimeout.FAIL,
) -> Workflow:
    """`draft` → `approve` (waits for the signal `approve`) → `publish`."""
    optional = ["approve"] if on_timeout is SignalTimeout.CONTINUE else []
    built = (
        WorkflowBuilder(workflow_id, "Approval", input=Ask)
        .pipe(define_stage(id="draft", input=Ask, output=Draft, execute=_draft))
        .pipe(define_stage(id="approve", output=Decision, execute=_builtin))
        .pipe(
            define_stage(
                id="publish",
                output=Published,
                execute=_publish,
                needs=["approve"],
                optional_needs=optional,
            )
        )
        .build()
    )
    wait = SignalWait(signal="approve", timeout_ms=timeout_ms, on_timeout=on_timeout)
    return waiting(
        built,
        signals=(APPROVAL,),
        approve={"wait_for": wait, "implementation": SIGNAL_IMPLEMENTATION},
    )


def workflows() -> list[Workflow]:
    return [
        sleepy(SleepSpec(duration_ms=60_000)),
        approval(),
        approval("lenient", on_timeout=SignalTimeout.CONTINUE),
        approval("patient", timeout_ms=None),
    ]


def another_kernel(tk: TestKernel, registry: list[Workflow], prefix: str) -> Kernel:
    """A second kernel on `tk`'s storage (a restarted worker, or `wfc runs signal` serving
    no workflow), with its own ids."""
    deps = tk.kernel.deps
    return Kernel(
        persistence=deps.persistence,
        blobs=deps.blobs,
        jobs=deps.jobs,
        events=CollectingEventSink(),
        clock=tk.clock,
        ids=SequentialIds(prefix),
        registry=WorkflowMap(registry),
        pinning=deps.pinning,
        shared_transactions=deps.shared_transactions,
    )
