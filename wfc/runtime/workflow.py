"""A Plan bound to the classes that implement its stages: what the kernel runs.

`load_workflow("my_pkg")` reads `my_pkg/plan.json` and imports each stage's
`implementation` (relative paths resolve against `my_pkg`), checking that the
class is the one generated for that stage. The queries mirror the seed's
`Workflow` (`stage_ids`, `execution_plan`, `default_config`,
`validate_config`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib import resources
from typing import Any

from pydantic import ValidationError

from wfc.errors import WorkflowLoadError
from wfc.plan import Plan, PlanStage
from wfc.runtime.stage import AsyncStage, Stage, _StageBase

PLAN_FILE = "plan.json"


class Workflow:
    """A plan and one implementation class per stage."""

    def __init__(self, plan: Plan, implementations: Mapping[str, type[_StageBase]]) -> None:
        missing = [sid for sid in plan.stage_ids() if sid not in implementations]
        if missing:
            raise WorkflowLoadError(
                f"workflow {plan.workflow_id!r}", f"no implementation for {missing}"
            )
        self.plan = plan
        self.implementations = dict(implementations)

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

    def default_config(self) -> dict[str, dict[str, Any]]:
        """`{stage_id: defaults}` for every stage."""
        return self.plan.default_config()

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        """Every problem with a run's config, per stage id; empty when it is valid.

        Each stage's slice (`config[stage_id]`, else its defaults) is parsed with
        the stage's config model, the same way the stage will see it.
        """
        problems: dict[str, list[str]] = {}
        defaults = self.default_config()
        for sid, cls in self.implementations.items():
            value = config.get(sid, defaults.get(sid, {}))
            try:
                cls.config_model.model_validate(value)
            except ValidationError as error:
                problems[sid] = [
                    f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                    for e in error.errors()
                ]
        return problems


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


def bind_plan(plan: Plan, package: str | None = None) -> Workflow:
    """Import every stage's implementation and bind it to the plan."""
    return Workflow(plan, {s.id: _import_implementation(s, package) for s in plan.stages})


def load_workflow(package: str) -> Workflow:
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
    return bind_plan(plan, package)
