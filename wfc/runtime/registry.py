"""Workflow registries: which workflow implements which id.

`WorkflowMap` holds workflows already loaded. `load_registry` builds one from
compiled packages (`my_app.pipeline`) or `plan.json` paths, importing each
plan's stage classes, so a worker can be pointed at files.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from wfc.errors import WorkflowLoadError
from wfc.runtime.workflow import PLAN_FILE, Workflow, load_workflow


class WorkflowRegistry(Protocol):
    """Workflows by id: what the kernel looks a run's workflow up in.

    It sits here, beside the map that implements it, rather than with the
    storage ports: it hands out `Workflow`s, which bring their stage classes
    and the AI helper with them, and the ports stay below all of that.
    """

    def get(self, workflow_id: str) -> Workflow | None:
        """The workflow, or None (never raises)."""
        ...

    def plans(self) -> list[str]:
        """The fingerprints of the plans served: what a worker claims and dequeues."""
        ...

    def workflows(self) -> list[Workflow]:
        """Every workflow served, by id."""
        ...


class WorkflowMap:
    """A `WorkflowRegistry` over a fixed set of workflows."""

    def __init__(self, workflows: Iterable[Workflow] = ()) -> None:
        self._workflows: dict[str, Workflow] = {}
        # `plans()` of the workflows held when it was last asked (`_sorted_plans`).
        self._plans_of: tuple[tuple[Workflow, ...], list[str]] = ((), [])
        for workflow in workflows:
            self.add(workflow)

    def add(self, workflow: Workflow) -> None:
        """Register a workflow; a second one with the same id is refused."""
        if workflow.id in self._workflows:
            raise ValueError(f"workflow {workflow.id!r} is registered twice")
        self._workflows[workflow.id] = workflow

    def get(self, workflow_id: str) -> Workflow | None:
        return self._workflows.get(workflow_id)

    def plans(self) -> list[str]:
        return list(self._sorted_plans())

    def _sorted_plans(self) -> list[str]:
        """The plans' fingerprints, sorted once per set of workflows held: a worker asks for
        them several times per run (claims, dequeues, a test kernel's every round), and
        sorting them each time was a cost. Keyed by the workflows themselves (compared by
        identity, plans being immutable), not invalidated by `add`: a test may swap a
        workflow in the map directly."""
        held = tuple(self._workflows.values())
        known, plans = self._plans_of
        if held != known:
            plans = sorted(workflow.plan.fingerprint for workflow in held)
            self._plans_of = (held, plans)
        return plans

    def workflows(self) -> list[Workflow]:
        return [self._workflows[workflow_id] for workflow_id in sorted(self._workflows)]

    def ids(self) -> list[str]:
        """Registered workflow ids, sorted."""
        return sorted(self._workflows)


def load_package_workflow(package: str) -> Workflow:
    """The `workflow` a compiled package's `__init__` defines (it knows its input model)."""
    try:
        module = importlib.import_module(package)
    except ImportError as error:
        raise WorkflowLoadError(f"package {package!r}", str(error)) from error
    workflow = getattr(module, "workflow", None)
    if isinstance(workflow, Workflow):
        return workflow
    return load_workflow(package)


def load_plan_path(path: Path) -> Workflow:
    """The workflow of a compiled package given its directory or its `plan.json`.

    The package's parent directory is put on `sys.path` so its stage modules
    import the way they do in the user's project.
    """
    directory = path.parent if path.name == PLAN_FILE else path
    if not (directory / PLAN_FILE).is_file() or not (directory / "__init__.py").is_file():
        raise WorkflowLoadError(str(path), f"not a compiled workflow package (no {PLAN_FILE})")
    root = str(directory.parent.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    return load_package_workflow(directory.name)


def load_registry(sources: Iterable[str | Path]) -> WorkflowMap:
    """A registry of the workflows in `sources`: package names or paths to packages/plans."""
    registry = WorkflowMap()
    for source in sources:
        path = Path(source)
        is_path = isinstance(source, Path) or path.exists()
        registry.add(load_plan_path(path) if is_path else load_package_workflow(str(source)))
    return registry
