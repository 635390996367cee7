"""A Plan bound to the classes that implement its stages: what the kernel runs.

`load_workflow("my_pkg")` reads `my_pkg/plan.json` and imports each stage's
`implementation` (relative paths resolve against `my_pkg`), checking that the
class is the one generated for that stage. The queries mirror the seed's
`Workflow` (`stage_ids`, `execution_plan`, `default_config`,
`validate_config`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import BaseModel, ValidationError

from wfc.errors import (
    ConfigValidationError,
    InvalidRunInputError,
    WorkflowLoadError,
    validation_problems,
)
from wfc.plan import Plan, PlanStage
from wfc.runtime.copies import json_copy
from wfc.runtime.stage import AsyncStage, Stage, _StageBase

PLAN_FILE = "plan.json"


def unknown_fields(model: type[BaseModel], value: Mapping[str, Any]) -> list[str]:
    """A problem for each top-level key of `value` that `model` does not declare (a model
    that keeps extra fields has none), naming the closest declared field."""
    if model.model_config.get("extra") == "allow" or not isinstance(value, Mapping):
        return []
    declared = _declared(model)
    if declared.issuperset(value):  # every run's input, as a rule: nothing to explain
        return []
    problems = []
    for key in value:
        if key in declared:
            continue
        close = difflib.get_close_matches(str(key), sorted(declared), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"fields: {', '.join(sorted(declared))}"
        problems.append(f"{key}: not a field of the input ({hint})")
    return problems


def _declared(model: type[BaseModel]) -> frozenset[str]:
    """The names and aliases `model` declares, kept with the model (every run's input is
    checked against them). Kept by the class and its fields' identity: a model's fields
    are rebuilt only by `model_rebuild`, which makes a new dict of them."""
    fields = model.model_fields
    kept = _DECLARED.get(model)
    if kept is not None and kept[0] is fields:
        return kept[1]
    declared = frozenset(fields) | {f.alias for f in fields.values() if f.alias is not None}
    _DECLARED[model] = (fields, declared)
    return declared


_DECLARED: weakref.WeakKeyDictionary[type[BaseModel], tuple[object, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class StageJobDefaults:
    """What every job of one stage carries, whatever its run, read off the plan once per
    workflow: a job is queued per stage of every run, and a plan's stage is a pydantic
    model, whose attributes cost several times a plain object's to read (its
    `__getattr__` keeps the interpreter from caching them), and `Plan.queue_of` scans the
    plan's stages. `priority`: the stage's own, None to take its run's; `limited`: under a
    concurrency or rate limit, which `wfc.runtime.limits` resolves per run."""

    priority: int | None
    max_attempts: int
    queue: str
    limited: bool


class Workflow:
    """A plan, one implementation class per stage, and the model run input must fit.

    Without an `input_model` any JSON object is accepted as run input.
    """

    def __init__(
        self,
        plan: Plan,
        implementations: Mapping[str, type[_StageBase]],
        *,
        input_model: type[BaseModel] | None = None,
        unbound: bool = False,
    ) -> None:
        # Built-in stages (a sleep, a signal wait: `wfc.plan_waits`) have no class.
        missing = [
            stage.id
            for stage in plan.stages
            if stage.id not in implementations and not stage.builtin
        ]
        if missing and not unbound:
            raise WorkflowLoadError(
                f"workflow {plan.workflow_id!r}", f"no implementation for {missing}"
            )
        self.plan = plan
        self.implementations = dict(implementations)
        self.input_model = input_model
        self._group_of = {sid: n for n, group in enumerate(plan.groups, 1) for sid in group}
        self._alone = frozenset(group[0] for group in plan.groups if len(group) == 1)
        self._number_of = {stage.id: n for n, stage in enumerate(plan.stages, 1)}
        self._stages = {stage.id: stage for stage in plan.stages}
        self._job_defaults = {
            stage.id: StageJobDefaults(
                priority=stage.priority,
                max_attempts=stage.retry.max_attempts,
                queue=plan.queue_of(stage.id),
                limited=stage.concurrency is not None or stage.rate is not None,
            )
            for stage in plan.stages
        }
        # Groups whose opening decides nothing but what was skipped upstream: known once
        # per plan, where every transition of every run asked each stage again.
        # A stage's default config parsed, by stage id, with the model that parsed it: the
        # same for every run given no config for it, when parsing it runs no code of the
        # model's own (`_repeatable`; None when it may); each run is given a copy.
        self._parsed_defaults: dict[str, tuple[type[BaseModel], dict[str, Any] | None]] = {}
        self._plain_stages = frozenset(stage.id for stage in plan.stages if _plain(stage))
        self._plain_groups = frozenset(
            n
            for n, group in enumerate(plan.groups, 1)
            if group and all(sid in self._plain_stages for sid in group)
        )

    @classmethod
    def of_plan(cls, plan: Plan) -> Workflow:
        """The plan with none of its stages' classes: enough to move a run on (open its
        next group, queue its jobs) in a process that runs none of its stages, as
        `run.signal` does from `wfc runs signal`; never enough to execute a stage."""
        return cls(plan, {}, unbound=True)

    @property
    def id(self) -> str:
        """The workflow id runs are created with."""
        return self.plan.workflow_id

    def stage_ids(self) -> list[str]:
        """Stage ids in definition order."""
        return self.plan.stage_ids()

    def execution_plan(self) -> list[list[str]]:
        """Groups of stage ids in execution order."""
        return [list(group) for group in self.plan.groups]

    @property
    def name(self) -> str:
        """The workflow's display name."""
        return self.plan.name

    @functools.cached_property
    def plan_json(self) -> str:
        """The plan's canonical JSON (`Plan.to_json`), made once per workflow: every kernel
        built with the workflow stores it once (`kernel.plans`), and a test suite builds a
        kernel per test, where making it again was half of a first run's time."""
        return self.plan.to_json()

    def stage(self, stage_id: str) -> PlanStage | None:
        """The plan of one stage, or None."""
        return self._stages.get(stage_id)

    def group_of(self, stage_id: str) -> int:
        """The 1-based execution group of a stage."""
        return self._group_of[stage_id]

    def alone(self, stage_id: str) -> bool:
        """Whether the stage is the only one of its execution group (every stage's job asks:
        known once per plan, not two lookups and a slice per job)."""
        return stage_id in self._alone

    def stage_number(self, stage_id: str) -> int:
        """The 1-based position of a stage in definition order."""
        return self._number_of[stage_id]

    def job_defaults(self, stage_id: str) -> StageJobDefaults | None:
        """What every job of the stage carries whatever its run, or None for no such stage."""
        return self._job_defaults.get(stage_id)

    def queue_of(self, stage_id: str) -> str:
        """The queue whose workers run the stage (`Plan.queue_of`, known once per plan)."""
        return self._job_defaults[stage_id].queue

    def group(self, number: int) -> tuple[str, ...]:
        """The stage ids of execution group `number` (1-based); empty past the last group."""
        groups = self.plan.groups
        return groups[number - 1] if 0 < number <= len(groups) else ()

    def plain_stage(self, stage_id: str) -> bool:
        """Whether the stage is plain: no `when`, no map, not built in (a sleep, a signal
        wait, a child run). Asked per job, known once per plan."""
        return stage_id in self._plain_stages

    def plain_group(self, number: int) -> bool:
        """Whether every stage of group `number` is plain: no `when`, no map, not built in
        (a sleep, a signal wait, a child run). Such a group opens with a row and a job per
        stage, except for stages whose dependencies were all skipped."""
        return number in self._plain_groups

    def validate_input(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """The run input parsed by the input model (defaults filled), as JSON data.

        Raises `InvalidRunInputError` listing every failing field.
        """
        if self.input_model is None:
            return dict(value)
        unknown = unknown_fields(self.input_model, value)
        try:
            parsed = self.input_model.model_validate(value)
        except ValidationError as error:
            raise InvalidRunInputError(self.id, unknown + validation_problems(error)) from None
        if unknown:  # a misspelled optional field would be dropped without a word
            raise InvalidRunInputError(self.id, unknown)
        return parsed.model_dump(mode="json")

    def default_config(self) -> dict[str, dict[str, Any]]:
        """`{stage_id: defaults}` for every stage."""
        return self.plan.default_config()

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        """Every problem with a run's config, per stage id; empty when it is valid."""
        try:
            self.parse_config(config)
        except ConfigValidationError as error:
            return error.problems
        return {}

    def parse_config(self, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """The run-wide config every stage will see, parsed (defaults filled), as JSON data.

        A stage's slice replaces its defaults as a whole (`config[stage_id]`,
        else the defaults), then its config model parses it, the same way the
        stage will. Raises `ConfigValidationError` listing every bad field of
        every stage, and naming config for stages the workflow does not have.
        """
        problems: dict[str, list[str]] = {
            sid: ["no such stage in this workflow"]
            for sid in config
            if sid not in self.implementations and sid not in self._stages
        }
        defaults: dict[str, dict[str, Any]] | None = None
        parsed: dict[str, dict[str, Any]] = {}
        for sid, cls in self.implementations.items():
            given = sid in config
            kept = None if given else self._parsed_defaults.get(sid)
            if kept is not None and kept[0] is not cls.config_model:
                kept = None  # (the stage's class or its model was swapped)
            if kept is not None and kept[1] is not None:
                parsed[sid] = json_copy(kept[1])
                continue
            if not given:
                defaults = self.default_config() if defaults is None else defaults
            value = config[sid] if given else defaults.get(sid, {})  # type: ignore[union-attr]
            try:
                parsed[sid] = cls.config_model.model_validate(value).model_dump(mode="json")
            except ValidationError as error:
                problems[sid] = validation_problems(error)
                continue
            if not given and kept is None:  # asked once per stage class
                repeated = json_copy(parsed[sid]) if _repeatable(cls.config_model) else None
                self._parsed_defaults[sid] = (cls.config_model, repeated)
        if problems:
            raise ConfigValidationError(problems)
        return parsed


def _repeatable(model: type[BaseModel]) -> bool:
    """Whether validating one value with `model` and dumping it as JSON gives the same data
    every time: nothing in its schema runs code of the model's own (validators and
    serializers, computed fields, a custom `__init__` or `model_post_init`, a default
    factory other than an empty container's), whose result could change between runs."""
    return not _runs_code(model.__pydantic_core_schema__)


_EMPTY_FACTORIES = (list, dict, set, frozenset, tuple)


def _runs_code(schema: object) -> bool:
    if isinstance(schema, list | tuple):
        return any(_runs_code(part) for part in schema)
    if not isinstance(schema, dict):
        return callable(schema) and not isinstance(schema, type)
    kind = schema.get("type")
    if isinstance(kind, str) and kind.startswith(("function", "generator")):
        return True
    if schema.get("custom_init") or schema.get("post_init") or schema.get("computed_fields"):
        return True
    factory = schema.get("default_factory")
    if factory is not None and factory not in _EMPTY_FACTORIES:
        return True
    # (`metadata` is for the JSON schema only; `cls` is the model itself.)
    return any(_runs_code(part) for key, part in schema.items() if key not in _SKIPPED)


_SKIPPED = frozenset({"metadata", "cls", "default_factory"})


def _plain(stage: PlanStage | None) -> bool:
    return stage is not None and stage.when is None and stage.map is None and not stage.builtin


def _import_implementation(stage: PlanStage, package: str | None) -> type[_StageBase]:
    module_path, _, class_name = stage.implementation.partition(":")
    what = f"stage {stage.id!r} implementation {stage.implementation!r}"
    if not class_name:
        raise WorkflowLoadError(what, "expected `module:Class`")
    if module_path.startswith(".") and package is None:
        raise WorkflowLoadError(what, "relative path but the plan was not loaded from a package")
    try:
        module = importlib.import_module(module_path, package)
    except ImportError as error:
        raise WorkflowLoadError(what, str(error)) from error
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Stage | AsyncStage):
        raise WorkflowLoadError(what, f"`{class_name}` is not a Stage subclass")
    if getattr(cls, "stage_id", None) != stage.id:
        raise WorkflowLoadError(what, f"`{class_name}` implements stage {cls.stage_id!r}")
    if stage.kind == "async" and not cls.suspends:
        raise WorkflowLoadError(what, "the stage is async but the class is not an AsyncStage")
    return cls


def bind_plan(
    plan: Plan, package: str | None = None, *, input_model: type[BaseModel] | None = None
) -> Workflow:
    """Import every stage's implementation and bind it to the plan."""
    implementations = {
        s.id: _import_implementation(s, package) for s in plan.stages if not s.builtin
    }
    return Workflow(plan, implementations, input_model=input_model)


def load_workflow(package: str, *, input_model: type[BaseModel] | None = None) -> Workflow:
    """Load `<package>/plan.json` and bind its stages (what generated `__init__.py` calls)."""
    try:
        text = resources.files(package).joinpath(PLAN_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as error:
        raise WorkflowLoadError(f"{package}/{PLAN_FILE}", str(error)) from error
    try:
        plan = Plan.from_json(text)
    except ValidationError as error:
        raise WorkflowLoadError(f"{package}/{PLAN_FILE}", str(error)) from error
    if not plan.verify_fingerprint():
        raise WorkflowLoadError(
            f"{package}/{PLAN_FILE}", "its fingerprint does not match its content; recompile it"
        )
    return bind_plan(plan, package, input_model=input_model)
