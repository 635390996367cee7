"""Workflows in plain Python, for people who do not use the `.wf` language.

```python
extract = define_stage(id="extract", output=Text, input=Doc, execute=extract_text)
count = define_stage(id="count", output=Counts, execute=count_words, needs=["extract"])
workflow = WorkflowBuilder("docs", "Documents", input=Doc).pipe(extract).pipe(count).build()
```

A stage can run once per item of a list (`map` in the language):

```python
classify = define_stage(
    id="classify", input=Page, output=Label, execute=classify_page,
    map_over="split.pages", at_most=16, on_item_failure="continue",
)
```

A stage can run on a named queue and under fleet-wide limits, and a workflow can
have a queue of its own and schedules (see `wfc.runtime.builder_fleet`):

```python
call = define_stage(
    id="call", input=Doc, output=Answer, execute=call_model, queue="gpu",
    concurrency=2, concurrency_per="input.customer_id",
    rate="50 per minute", rate_shared="openai",
)
nightly = ScheduleSpec(name="nightly", cron="0 6 * * *", timezone="Europe/Paris",
                       input={"url": "https://example.com/daily"})
WorkflowBuilder("docs", "Documents", input=Doc, queue="gpu", schedules=[nightly])
```

A workflow can declare signals and have built-in stages that sleep or wait for one
(see `wfc.runtime.builder_waits`):

```python
approve = define_signal("approve", Decision)
WorkflowBuilder("docs", "Documents", input=Doc, signals=[approve]).pipe(draft).pipe(
    wait_stage("approval", approve, timeout_ms=86_400_000, on_timeout="continue")
)
```

`build()` returns the same `Workflow` (a `Plan` plus stage classes) that a
compiled package loads, so the kernel cannot tell the two apart. Checks the
compiler would make are made here at build time: duplicate ids, dependencies
on stages that do not run earlier, a `map_over` path that does not lead to a
list, a stage taking a mapped stage's list as its whole input, and the rules of
queues, limits and schedules.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic_core import to_jsonable_python

from wfc.plan import (
    DEFAULT_MAP_AT_MOST,
    MAP_AT_MOST_LIMIT,
    ConcurrencyLimit,
    Condition,
    InputSource,
    ItemFailure,
    MapSpec,
    Plan,
    PlanStage,
    PollPolicy,
    RateLimit,
    RetryPolicy,
    ScheduleSpec,
    SignalSpec,
    StageKind,
)
from wfc.runtime import builder_fleet, builder_waits
from wfc.runtime.model_schemas import json_schema
from wfc.runtime.stage import AsyncStage, ItemResult, Stage, StageContext, _StageBase
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
    # None for a built-in stage (`sleep_stage`, `wait_stage`, `child_stage`): the runtime
    # runs it.
    implementation: type[_StageBase] | None = None

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


_PATH_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _map_spec(
    stage_id: str,
    over: str | Sequence[str],
    at_most: int | None,
    on_item_failure: ItemFailure | str | None,
) -> MapSpec:
    """The `MapSpec` of `define_stage(map_over=…)`, with the compiler's checks of it."""
    path = tuple(over.split(".")) if isinstance(over, str) else tuple(over)
    if not path or not all(isinstance(p, str) and _PATH_PART.fullmatch(p) for p in path):
        raise ValueError(
            f'Stage "{stage_id}": map_over must be a path such as "split.pages" or '
            f'("input", "urls"), not {over!r}'
        )
    if path[0] == stage_id:
        raise ValueError(f'Stage "{stage_id}" maps over its own output')
    limit = DEFAULT_MAP_AT_MOST if at_most is None else at_most
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAP_AT_MOST_LIMIT:
        raise ValueError(
            f'Stage "{stage_id}": at_most must be a whole number from 1 to '
            f"{MAP_AT_MOST_LIMIT}, not {limit!r}"
        )
    try:
        policy = ItemFailure(on_item_failure or ItemFailure.FAIL)
    except ValueError:
        raise ValueError(
            f'Stage "{stage_id}": on_item_failure must be "fail" or "continue", '
            f"not {on_item_failure!r}"
        ) from None
    return MapSpec(over=path, at_most=limit, on_item_failure=policy)


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
    map_over: str | Sequence[str] | None = None,
    at_most: int | None = None,
    on_item_failure: ItemFailure | str | None = None,
    check_completion: Callable[..., Any] | None = None,
    retry: RetryPolicy | None = None,
    timeout_ms: int | None = None,
    poll: PollPolicy | None = None,
    priority: int | None = None,
    queue: str | None = None,
    concurrency: int | ConcurrencyLimit | None = None,
    concurrency_per: str | Sequence[str] | None = None,
    rate: str | RateLimit | None = None,
    rate_shared: str | None = None,
) -> StageDefinition:
    """Define a stage from functions: `execute(ctx)` and, for async stages, `check_completion`.

    `input` is the model of the stage's input: the previous group's output (the
    workflow input for the first group), or `input_from`'s output. Without it
    the stage takes no input and reads its `needs` through `ctx.require`.
    A stage with `check_completion` may return `Suspend` from `execute`.
    With `when` (e.g. `when=when.input.confidence < 0.8`, from `wfc.runtime.conditions`)
    the stage runs only if the condition holds, else it is SKIPPED; `optional_needs` are
    the needs that may have been skipped (`ctx.optional(...)` gives None for them).

    With `map_over` (`"split.pages"`, or `("input", "urls")`) the stage runs once per
    item of that list, at most `at_most` items at once (default 10), and `input` is the
    model of one item (a `RootModel[str]` for items that are not objects): `ctx.input`
    is the item and `ctx.item_index` its place. `on_item_failure="continue"` goes on
    past items that fail for good. Stages that need it read its list with
    `ctx.dependency_list(id, Output)` (`ctx.item_results(id, Output)` with `continue`).

    `queue` names the queue whose workers run the stage (else the workflow's). With
    `concurrency=2` at most two executions run at once across the fleet, per value of
    the workflow input's field at `concurrency_per` (`"input.customer_id"`) when given;
    with `rate="50 per minute"` at most 50 start in any minute, from the budget named
    `rate_shared` when given (shared with every stage that names it).
    """
    mapped = None
    if map_over is not None:
        if input_from is not None:
            raise ValueError(
                f'Stage "{id}" maps over a list, so its input is one item: drop input_from '
                f'and read "{input_from}" with needs'
            )
        if input is None:
            raise ValueError(
                f'Stage "{id}" maps over a list: give input=, the model of one item '
                "(e.g. input=Page, or input=RootModel[str] for items that are not objects)"
            )
        mapped = _map_spec(id, map_over, at_most, on_item_failure)
    elif at_most is not None or on_item_failure is not None:
        raise ValueError(
            f'Stage "{id}": at_most and on_item_failure are settings of a mapped stage; '
            "give map_over too"
        )
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
    if mapped is not None:
        source = InputSource.ITEM
    elif input_from is not None:
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
        input_schema=json_schema(input_model),
        output_schema=json_schema(output),
        config_schema=json_schema(config_model),
        config_defaults=_config_defaults(config_model),
        needs=(*required, *(dep for dep in optional if dep not in required)),
        optional_needs=optional,
        when=when,
        map=mapped,
        retry=retry or RetryPolicy(),
        timeout_ms=timeout_ms,
        poll=poll,
        priority=priority,
        queue=builder_fleet.queue_name(f'Stage "{id}"', queue),
        concurrency=builder_fleet.concurrency_limit(id, concurrency, concurrency_per),
        rate=builder_fleet.rate_limit(id, rate, rate_shared),
        implementation=f"{execute.__module__}:{execute.__qualname__}",
    )
    return StageDefinition(plan=plan, implementation=implementation)


@dataclass
class WorkflowBuilder:
    """Stages added group by group: `pipe` adds a group of one, `parallel` a group of several.

    `queue` is the queue of every stage that names none; `schedules` start runs on
    their ticks (checked when the workflow is built).
    """

    id: str
    name: str
    input: type[BaseModel] | None = None
    description: str | None = None
    queue: str | None = None
    schedules: Sequence[ScheduleSpec] = ()
    signals: Sequence[SignalSpec] = ()
    _groups: list[tuple[StageDefinition, ...]] = field(default_factory=list)

    def pipe(self, stage: StageDefinition | PlanStage) -> WorkflowBuilder:
        """Run `stage` after everything added so far (a `PlanStage`: a built-in stage from
        `sleep_stage` or `wait_stage`)."""
        return self._add((_definition(stage),))

    def parallel(self, stages: Sequence[StageDefinition | PlanStage]) -> WorkflowBuilder:
        """Run `stages` concurrently after everything added so far (they may not need each other)."""
        if not stages:
            raise ValueError("parallel() needs at least one stage")
        return self._add(tuple(_definition(s) for s in stages))

    def _add(self, group: tuple[StageDefinition, ...]) -> WorkflowBuilder:
        earlier = {s.id: s for g in self._groups for s in g}
        for stage in group:
            if stage.id in earlier or [s.id for s in group].count(stage.id) > 1:
                raise ValueError(f'Stage "{stage.id}" is added twice')
            read = stage.plan.when.roots() - {"input"} if stage.plan.when else set()
            if stage.plan.sleep is not None and stage.plan.sleep.until is not None:
                read |= {stage.plan.sleep.until[0]} - {"input"}
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
            if stage.plan.map is not None:
                self._check_map(stage, earlier)
            builder_fleet.check_per_path(stage.plan, json_schema(self.input or NoInput))
            self._check_whole_input(stage, earlier)
        self._groups.append(group)
        return self

    def _check_map(self, stage: StageDefinition, earlier: dict[str, StageDefinition]) -> None:
        """The path leads to a list, from the workflow input or a stage added before."""
        assert stage.plan.map is not None
        over = stage.plan.map.over
        text = ".".join(over)
        if over[0] == "input":
            schema = json_schema(self.input or NoInput)
        elif over[0] in earlier:
            source = earlier[over[0]].plan
            schema = _gathered_schema(earlier[over[0]])
            if source.map is not None and source.map.on_item_failure is ItemFailure.CONTINUE:
                raise ValueError(
                    f'Stage "{stage.id}" maps over "{over[0]}", whose list holds results '
                    '(on_item_failure="continue"), not outputs'
                )
        else:
            raise ValueError(
                f'Stage "{stage.id}" maps over "{text}", but "{over[0]}" is neither "input" '
                "nor a stage added before it"
            )
        problem = _list_problem(schema, over)
        if problem is not None:
            raise ValueError(f'Stage "{stage.id}" maps over "{text}": {problem}')

    def _check_whole_input(
        self, stage: StageDefinition, earlier: dict[str, StageDefinition]
    ) -> None:
        """A mapped stage's output is a list, which no stage takes as its whole input."""
        source = stage.plan.input_from
        if stage.plan.input_source is InputSource.FLOW and self._groups:
            previous = self._groups[-1]
            source = previous[0].id if len(previous) == 1 else None
        if source is None or source not in earlier or earlier[source].plan.map is None:
            return
        raise ValueError(
            f'Stage "{stage.id}" takes its input from "{source}", a mapped stage whose '
            f'output is a list: give it needs=["{source}"] (no input) and read '
            f'ctx.dependency_list("{source}", Model)'
        )

    def build(self) -> Workflow:
        """The workflow: a fingerprinted plan bound to the stage classes."""
        stages = [s for g in self._groups for s in g]
        builder_fleet.check_shared_rates(s.plan for s in stages)
        builder_waits.check_signals(tuple(self.signals), [s.plan for s in stages])
        plan = Plan(
            workflow_id=self.id,
            name=self.name,
            description=self.description,
            input_schema=json_schema(self.input or NoInput),
            output_schema=self._output_schema(),
            stages=tuple(s.plan for s in stages),
            groups=tuple(tuple(s.id for s in g) for g in self._groups),
            queue=builder_fleet.queue_name(f'Workflow "{self.id}"', self.queue),
            schedules=builder_fleet.schedules(self.schedules, self.input),
            signals=tuple(self.signals),
        ).with_fingerprint()
        implementations = {s.id: s.implementation for s in stages if s.implementation is not None}
        return Workflow(plan, implementations, input_model=self.input)

    def _output_schema(self) -> dict[str, Any]:
        if not self._groups:
            return json_schema(NoInput)
        last = self._groups[-1]
        if len(last) == 1:
            return _gathered_schema(last[0])
        return {
            "type": "object",
            "properties": {s.id: _gathered_schema(s) for s in last},
            "required": [s.id for s in last],
        }


def _definition(stage: StageDefinition | PlanStage) -> StageDefinition:
    return stage if isinstance(stage, StageDefinition) else StageDefinition(plan=stage)


def _gathered_schema(stage: StageDefinition) -> dict[str, Any]:
    """The schema of what a stage hands on: its output, or a mapped stage's list."""
    spec = stage.plan.map
    if spec is None or stage.implementation is None:  # a child stage is never mapped
        return stage.plan.output_schema
    assert stage.implementation is not None  # a built-in stage is never mapped
    output = stage.implementation.output_model
    if spec.on_item_failure is ItemFailure.CONTINUE:
        return TypeAdapter(list[ItemResult[output]]).json_schema()  # type: ignore[valid-type]
    return TypeAdapter(list[output]).json_schema()  # type: ignore[valid-type]


def _list_problem(schema: dict[str, Any], path: tuple[str, ...]) -> str | None:
    """Why the value at `path` (after its first part) of `schema` is not a list, or None
    when it is one. A field that may be null is followed: a missing list maps as no items."""
    try:
        node, read = builder_fleet.schema_at(schema, path)
    except LookupError as missing:
        return str(missing.args[0])
    if node.get("type") != "array":
        return f'"{read}" is not a list'
    return None
