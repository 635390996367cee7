"""Workflows whose stages do what each test scripts, on a memory test kernel with a fake clock."""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from tests.databases import kernel_on_storage
from wfc.plan import PollPolicy, RetryPolicy
from wfc.runtime import NotReady, Ready, Suspend, Workflow, WorkflowBuilder, define_stage
from wfc.testing import TestKernel


class Doc(BaseModel):
    text: str = Field(min_length=1)
    language: str = "en"


class Words(BaseModel):
    words: list[str]


class Count(BaseModel):
    count: int = Field(ge=0)


class Report(BaseModel):
    summary: str


class SplitConfig(BaseModel):
    lowercase: bool = False
    limit: int = Field(default=100, ge=1)


@dataclass
class Script:
    """Per stage id, what the next calls do: a value to return, an exception to raise, or a
    function of the context. Unscripted calls do the stage's normal work."""

    actions: dict[str, list[Any]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def then(self, stage_id: str, *actions: Any) -> None:
        self.actions.setdefault(stage_id, []).extend(actions)

    def act(self, stage_id: str, ctx: Any, default: Callable[[], Any]) -> Any:
        self.calls[stage_id] += 1
        queue = self.actions.get(stage_id)
        action = queue.pop(0) if queue else None
        if action is None:
            return default()
        if isinstance(action, BaseException):
            raise action
        if callable(action):
            return action(ctx)
        return action


FAST_RETRY = RetryPolicy(max_attempts=3, backoff_initial_ms=1000, backoff_multiplier=2.0)


def build_workflows(script: Script) -> list[Workflow]:
    """`linear` (split → count → report), `fanout` (split → [upper, length] → join), `batch`."""

    def split(ctx: Any) -> Any:
        def work() -> Words:
            words = ctx.input.text.split()[: ctx.config.limit]
            return Words(words=[w.lower() for w in words] if ctx.config.lowercase else words)

        return script.act("split", ctx, work)

    def count(ctx: Any) -> Any:
        return script.act("count", ctx, lambda: Count(count=len(ctx.input.words)))

    def report(ctx: Any) -> Any:
        words = Words.model_validate(ctx.require("split"))
        total = Count.model_validate(ctx.require("count"))
        return script.act(
            "report", ctx, lambda: Report(summary=f"{total.count}: {' '.join(words.words)}")
        )

    def upper(ctx: Any) -> Any:
        return script.act("upper", ctx, lambda: Words(words=[w.upper() for w in ctx.input.words]))

    def length(ctx: Any) -> Any:
        return script.act("length", ctx, lambda: Count(count=sum(map(len, ctx.input.words))))

    def join(ctx: Any) -> Any:
        def work() -> Report:
            up = Words.model_validate(ctx.require("upper"))
            n = Count.model_validate(ctx.require("length"))
            return Report(summary=f"{' '.join(up.words)} ({n.count})")

        return script.act("join", ctx, work)

    async def submit(ctx: Any) -> Any:
        return script.act(
            "submit", ctx, lambda: Suspend(state={"batch": ctx.input.text, "polls": 0})
        )

    async def check(state: dict[str, Any], ctx: Any) -> Any:
        def work() -> Any:
            state["polls"] += 1
            if state["polls"] < 2:
                return NotReady()
            return Ready(output=Words(words=state["batch"].split()))

        result = script.act("check", ctx, work)
        return await result if inspect.isawaitable(result) else result

    def split_stage(name: str = "split") -> Any:
        return define_stage(
            id=name, input=Doc, output=Words, config=SplitConfig, execute=split, retry=FAST_RETRY
        )

    linear = (
        WorkflowBuilder("linear", "Linear", input=Doc)
        .pipe(split_stage())
        .pipe(define_stage(id="count", input=Words, output=Count, execute=count, retry=FAST_RETRY))
        .pipe(
            define_stage(
                id="report",
                output=Report,
                execute=report,
                needs=["split", "count"],
                retry=FAST_RETRY,
            )
        )
        .build()
    )
    fanout = (
        WorkflowBuilder("fanout", "Fan-out", input=Doc)
        .pipe(split_stage())
        .parallel(
            [
                define_stage(
                    id="upper", input=Words, output=Words, execute=upper, retry=FAST_RETRY
                ),
                define_stage(
                    id="length", input=Words, output=Count, execute=length, retry=FAST_RETRY
                ),
            ]
        )
        .pipe(define_stage(id="join", output=Report, execute=join, needs=["upper", "length"]))
        .build()
    )
    batch = (
        WorkflowBuilder("batch", "Batch", input=Doc)
        .pipe(
            define_stage(
                id="submit",
                input=Doc,
                output=Words,
                execute=submit,
                check_completion=check,
                poll=PollPolicy(interval_ms=30_000, max_wait_ms=3_600_000),
            )
        )
        .pipe(define_stage(id="count", input=Words, output=Count, execute=count))
        .build()
    )
    return [linear, fanout, batch]


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def tk(
    request: pytest.FixtureRequest, script: Script, tmp_path: Path
) -> AsyncIterator[TestKernel]:
    """The same kernel tests on memory ports, a SQLite file and PostgreSQL."""
    async with kernel_on_storage(request.param, build_workflows(script), tmp_path) as kernel:
        yield kernel
