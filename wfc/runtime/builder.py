"""Workflows in plain Python, for people who do not use the `.wf` language.

```python
extract = define_stage(id="extract", output=Text, input=Doc, execute=extract_text)
count = define_stage(id="count", output=Counts, execute=count_words, needs=["extract"])
workflow = WorkflowBuilder("docs", "Documents", input=Doc).pipe(extract).pipe(count).build()
```

`build()` returns the same `Workflow` (a `Plan` plus stage classes) that a
compiled package loads, so the kernel cannot tell the two apart. Checks the
compiler would make are made here at build time: duplicate ids, dependencies
on stages that do not run earlier.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import to_jsonable_python

from wfc.plan import (
    Condition,
    InputSource,
    Plan,
    PlanStage,
    PollPolicy,
    RetryPolicy,
    StageKind,
)
from wfc.runtime.stage import AsyncStage, Stage, StageContext, _StageBase
from wfc.runtime.workflow import Workflow


class NoInput(BaseModel):
    """The input of a stage that reads only its dependencies."""

    model_config = ConfigDict(extra="ignore")


class NoConfig(BaseModel):
    """The config of a stage that has none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StageDefinition:
    """A stage made by `define_stage`: its plan entry and its implementation class."""

    plan: PlanStage
    implementation: type[_StageBase]

    @property
    def id(self) -> str:
        """The stage id."""
        return self.plan.id


def _config_defaults(model: type[BaseModel]) -> dict[str, Any]:
    defaults = {
        name: info.get_default(call_default_factory=True)
        for name, info in model.model_fields.items()
        if not info.is_required()
    }
    return dict(to_jsonable_python(defaults))


def _method(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn(*args)` as a method, keeping it a coroutine function when `fn` is one."""
    if inspect.iscoroutinefunction(fn):

        async def call_async(self: object, *args: Any) -> Any:
            return await fn(*args)

        return call_async

    def call(self: object, *args: Any) -> Any:
        return fn(*args)

    return call


def define_stage(
    *,
    id: str,
    output: type[BaseModel],
    execute: Callable[..., Any],
    name: str | None = None,
    description: str | None = None,
    input: type[BaseModel] | None = None,
    input_from: str | None = None,
    config: type[BaseModel] | None = None,
    needs: Iterable[str] = (),
    optional_needs: Iterable[str] = (),
    when: Condition | None = None,
    check_completion: Callable[..., Any] | None = None,
    retry: RetryPolicy | None = None,
    timeout_ms: int | None = None,
    poll: PollPolicy | None = None,
    priority: int | None = None,
) -> StageDefinition:
    """Define a stage from functions: `execute(ctx)` and, for async stages, `check_completion`.

    `input` is the model of the stage's input: the previous group's output (the
    workflow input for the first group), or `input_from`'s output. Without it
    the stage takes no input and reads its `needs` through `ctx.require`.
    A stage with `check_completion` may return `Suspend` from `execute`.
    With `when` (e.g. `when=when.input.confidence < 0.8`, from `wfc.runtime.conditions`)
    the stage runs only if the condition holds, else it is SKIPPED; `optional_needs` are
    the needs that may have been skipped (`ctx.optional(...)` gives None for them).
    """
    input_model = input or NoInput
    config_model = config or NoConfig
    required, optional = tuple(needs), tuple(optional_needs)
    suspends = check_completion is not None
    attrs: dict[str, Any] = {
        "stage_id": id,
        "input_model": input_model,
        "output_model": output,
        "config_model": config_model,
        "context_type": StageContext,
        "execute": _method(execute),
        "__doc__": description or name or id,
    }
    if check_completion is not None:
        attrs["check_completion"] = _method(check_completion)
    base: type[_StageBase] = AsyncStage if suspends else Stage
    implementation = type(f"{id.title().replace('_', '')}Stage", (base,), attrs)
    if input_from is not None:
        source = InputSource.STAGE
    else:
        source = InputSource.FLOW if input is not None else InputSource.NONE
    plan = PlanStage(
        id=id,
        name=name or id,
        description=description,
        kind=StageKind.ASYNC if suspends else StageKind.SYNC,
        input_source=source,
        input_from=input_from,
        input_schema=input_model.model_json_schema(),
        output_schema=output.model_json_schema(),
        config_schema=config_model.model_json_schema(),
        config_defaults=_config_defaults(config_model),
        needs=(*required, *(dep for dep in optional if dep not in required)),
        optional_needs=optional,
        when=when,
        retry=retry or RetryPolicy(),
        timeout_ms=timeout_ms,
        poll=poll,
        priority=priority,
        implementation=f"{execute.__module__}:{execute.__qualname__}",
    )
    return StageDefinition(plan=plan, implementation=implementation)


@dataclass
class WorkflowBuilder:
    """Stages added group by group: `pipe` adds a group of one, `parallel` a group of several."""

    id: str
    name: str
    input: type[BaseModel] | None = None
    description: str | None = None
    _groups: list[tuple[StageDefinition, ...]] = field(default_factory=list)

    def pipe(self, stage: StageDefinition) -> WorkflowBuilder:
        """Run `stage` after everything added so far."""
        return self._add((stage,))

    def parallel(self, stages: Sequence[StageDefinition]) -> WorkflowBuilder:
        """Run `stages` concurrently after everything added so far (they may not need each other)."""
        if not stages:
            raise ValueError("parallel() needs at least one stage")
        return self._add(tuple(stages))

    def _add(self, group: tuple[StageDefinition, ...]) -> WorkflowBuilder:
        earlier = {s.id for g in self._groups for s in g}
        for stage in group:
            if stage.id in earlier or [s.id for s in group].count(stage.id) > 1:
                raise ValueError(f'Stage "{stage.id}" is added twice')
            read = stage.plan.when.roots() - {"input"} if stage.plan.when else set()
            wanted = [
                *stage.plan.needs,
                *([stage.plan.input_from] if stage.plan.input_from else []),
                *sorted(read),
            ]
            missing = [dep for dep in wanted if dep not in earlier]
            if missing:
                raise ValueError(
                    f'Stage "{stage.id}" has missing dependencies: {", ".join(missing)}'
                )
        self._groups.append(group)
        return self

    def build(self) -> Workflow:
        """The workflow: a fingerprinted plan bound to the stage classes."""
        stages = [s for g in self._groups for s in g]
        plan = Plan(
            workflow_id=self.id,
            name=self.name,
            description=self.description,
            input_schema=(self.input or NoInput).model_json_schema(),
            output_schema=self._output_schema(),
            stages=tuple(s.plan for s in stages),
            groups=tuple(tuple(s.id for s in g) for g in self._groups),
        ).with_fingerprint()
        implementations = {s.id: s.implementation for s in stages}
        return Workflow(plan, implementations, input_model=self.input)

    def _output_schema(self) -> dict[str, Any]:
        if not self._groups:
            return NoInput.model_json_schema()
        last = self._groups[-1]
        if len(last) == 1:
            return last[0].plan.output_schema
        return {
            "type": "object",
            "properties": {s.id: s.plan.output_schema for s in last},
            "required": [s.id for s in last],
        }
