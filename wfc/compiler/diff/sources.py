"""One side of a diff, from what the user names: a `.wf` source, a package, a plan.json.

A source is compiled in memory (nothing is written) and brings a `SourceMap`
from the compiler's AST, so each change can say where it is. A compiled
package brings one too when the source it was generated from sits beside it
and still compiles to the same plan. A plan alone has no locations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from wfc.compiler import ast, model
from wfc.compiler.checks import check_program
from wfc.compiler.diagnostics import Diagnostic, Severity, sort_diagnostics
from wfc.compiler.diff.context import Key, SourceMap
from wfc.compiler.diff.model import Location
from wfc.compiler.loader import is_source_path, load_program
from wfc.compiler.lower import lower
from wfc.compiler.source import Span
from wfc.plan import Plan

SideKind = Literal["source", "package", "plan", "stored"]

FingerprintLookup = Callable[[str], Plan | None]
"""How a stored plan is found by its fingerprint (a hook for reading the runtime's plans table)."""


class LoadError(Exception):
    """A side could not be loaded: one line for people, and the compiler's diagnostics when
    a source does not compile."""

    def __init__(self, message: str, diagnostics: Sequence[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics = list(diagnostics)


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """One side: its plan, what it was loaded from, and where things are in its source."""

    plan: Plan
    origin: str
    kind: SideKind
    locations: SourceMap | None = None
    warnings: list[Diagnostic] = field(default_factory=list)


def load_side(
    spec: str | Path,
    workflow_id: str | None = None,
    *,
    stored: FingerprintLookup | None = None,
) -> Loaded:
    """Load the plan `spec` names: a `.wf`/`.wf.yaml` file, a compiled package directory
    (with `plan.json`), a `plan.json` file, a directory holding sources or packages, or
    (with `stored`) a `sha256:…` fingerprint. `workflow_id` picks one workflow where there
    are several and must match where there is one. Raises `LoadError`."""
    text = str(spec)
    if text.startswith("sha256:"):
        return _stored(text, stored)
    path = Path(spec)
    if not path.exists():
        raise LoadError(f"{path.as_posix()}: no such file or directory")
    if path.is_dir():
        if (path / "plan.json").is_file():
            loaded = _package(path)
        else:
            return _directory(path, workflow_id)
    elif is_source_path(path):
        loaded = _source(path)
    elif path.suffix == ".json":
        loaded = _plan_file(path, "plan")
    else:
        raise LoadError(
            f"{path.as_posix()} is not a workflow source (.wf, .wf.yaml), a compiled package "
            "directory or a plan.json"
        )
    if workflow_id is not None and loaded.plan.workflow_id != workflow_id:
        raise LoadError(
            f"{path.as_posix()} holds workflow `{loaded.plan.workflow_id}`, not `{workflow_id}`"
        )
    return loaded


def _stored(fingerprint: str, stored: FingerprintLookup | None) -> Loaded:
    if stored is None:
        raise LoadError(
            f"{fingerprint}: reading a stored plan by its fingerprint is not supported yet; "
            "give the plan.json of that version instead"
        )
    plan = stored(fingerprint)
    if plan is None:
        raise LoadError(f"no stored plan has the fingerprint {fingerprint}")
    return Loaded(plan=plan, origin=fingerprint, kind="stored")


def _source(path: Path) -> Loaded:
    program = load_program(path)
    checked, found = check_program(program)
    diagnostics = sort_diagnostics([*program.diagnostics, *found])
    if checked is None:
        if any(d.severity is Severity.ERROR for d in diagnostics):
            raise LoadError(f"{path.as_posix()} does not compile", diagnostics)
        raise LoadError(f"{path.as_posix()} declares no workflow")
    node = None
    if program.root is not None and program.root.module.workflows:
        node = program.root.module.workflows[0]
    return Loaded(
        plan=lower(checked),
        origin=path.as_posix(),
        kind="source",
        locations=source_map(checked, node),
        warnings=diagnostics,
    )


def _plan_file(path: Path, kind: SideKind) -> Loaded:
    from pydantic import ValidationError

    try:
        plan = Plan.from_json(path.read_bytes())
    except OSError as error:
        raise LoadError(f"cannot read {path.as_posix()}: {error.strerror}") from error
    except ValidationError as error:
        first = error.errors()[0] if error.errors() else {"msg": str(error), "loc": ()}
        where = ".".join(str(part) for part in first.get("loc", ()))
        problem = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise LoadError(f"{path.as_posix()} is not a valid plan ({problem})") from error
    return Loaded(plan=plan, origin=path.as_posix(), kind=kind)


def _package(directory: Path) -> Loaded:
    loaded = _plan_file(directory / "plan.json", "package")
    source = _generated_from(directory)
    if source is not None:
        try:
            compiled = _source(source)
        except LoadError:
            compiled = None
        same = (
            compiled is not None and compiled.plan.fingerprint == loaded.plan.compute_fingerprint()
        )
        if compiled is not None and same:
            return Loaded(
                plan=loaded.plan,
                origin=directory.as_posix(),
                kind="package",
                locations=compiled.locations,
            )
    return Loaded(plan=loaded.plan, origin=directory.as_posix(), kind="package")


def _generated_from(directory: Path) -> Path | None:
    """The source a package says it was generated from (its `_models.py` header), if it
    is beside the package."""
    try:
        with (directory / "_models.py").open(encoding="utf-8") as models:
            header = models.readline()
    except (OSError, UnicodeDecodeError):
        return None
    prefix, suffix = "# Generated by wfc from ", "; edit that file instead."
    if not header.startswith(prefix) or suffix not in header:
        return None
    name = header[len(prefix) : header.index(suffix)]
    candidate = directory.parent / name
    return candidate if candidate.is_file() and "/" not in name else None


def _directory(directory: Path, workflow_id: str | None) -> Loaded:
    """The one workflow (or the one named) among the sources and packages directly in
    `directory`; a source is preferred to its own compiled package."""
    found: dict[str, Loaded] = {}
    failures: list[LoadError] = []
    for entry in sorted(directory.iterdir()):
        try:
            if entry.is_dir() and (entry / "plan.json").is_file():
                loaded = _package(entry)
            elif entry.is_file() and is_source_path(entry):
                loaded = _source(entry)
            else:
                continue
        except LoadError as error:
            failures.append(error)
            continue
        key = loaded.plan.workflow_id
        if key not in found or (found[key].kind != "source" and loaded.kind == "source"):
            found[key] = loaded
    shown = directory.as_posix()
    if workflow_id is not None:
        if workflow_id in found:
            return found[workflow_id]
        problem = f"{shown} holds no workflow `{workflow_id}`"
    elif len(found) == 1:
        return next(iter(found.values()))
    elif found:
        listed = ", ".join(sorted(found))
        raise LoadError(f"{shown} holds several workflows ({listed}): pick one with --workflow")
    else:
        problem = f"{shown} holds no workflow source (.wf, .wf.yaml) or compiled package"
    if failures:
        problem += f" that compiles ({len(failures)} file(s) do not)"
    raise LoadError(problem, [d for failure in failures for d in failure.diagnostics])


# -- where things are --------------------------------------------------------


def _location(span: Span) -> Location:
    line, column = span.file.line_col(span.start)
    end_line, end_column = span.file.line_col(span.end)
    return Location(
        file=span.file.display_name,
        line=line,
        column=column,
        end_line=end_line,
        end_column=end_column,
    )


def source_map(wf: model.WorkflowModel, node: ast.Workflow | None) -> SourceMap:
    """Where each part of a checked workflow is (see `SourceMap` for the keys)."""
    entries: dict[Key, Location] = {}

    def put(key: Key, span: Span | None) -> None:
        if span is not None and key not in entries:
            entries[key] = _location(span)

    def record(prefix: Key, rec: model.Record) -> None:
        if isinstance(rec.node, ast.TypeDecl):
            put(prefix, rec.node.name.span)
        elif rec.node is not None:
            put(prefix, rec.node.span)
        for item in rec.fields:
            put((*prefix, item.name), item.node.name.span if item.node else None)

    if node is not None:
        put(("workflow",), node.id.span)
        _workflow_entries(node, put)
        for flow in node.flows:
            put(("flow",), flow.span)
            for step in flow.steps:
                for name in step.stages:
                    put(("flow", name.value), name.span)
    record(("input",), wf.input)
    record(("output",), wf.output)
    for rec in wf.records:
        record(("type", rec.name), rec)
    for enum in wf.enums:
        put(("type", enum.name), enum.decl.name.span if enum.decl else None)
    for stage in wf.stages:
        _stage_entries(stage, put)
        base: Key = ("stage", stage.id)
        if isinstance(stage.input, model.Record):
            record((*base, "input"), stage.input)
        record((*base, "output"), stage.output)
        record((*base, "config"), stage.config)
    return SourceMap(entries)


def _workflow_entries(node: ast.Workflow, put: Callable[[Key, Span | None], None]) -> None:
    """The workflow's queue and its schedules, by name."""
    for queue in node.queues:
        put(("queue",), queue.span)
    for schedule in node.schedules:
        put(("schedule", schedule.name.value), schedule.name.span)
    for signal in node.signals:
        put(("signal", signal.name.value), signal.name.span)


class _Spanned(Protocol):
    @property
    def span(self) -> Span: ...


def _stage_entries(stage: model.StageModel, put: Callable[[Key, Span | None], None]) -> None:
    node = stage.node
    if node is None:
        return
    base: Key = ("stage", stage.id)
    put(base, node.name.span)
    firsts: list[tuple[str, Sequence[_Spanned]]] = [
        ("input", node.inputs),
        ("output", node.outputs),
        ("config", node.configs),
        ("when", node.conditions),
        ("map", node.maps),
        ("retry", node.retries),
        ("timeout", node.timeouts),
        ("poll", node.polls),
        ("priority", node.priorities),
        ("queue", node.queues),
        ("concurrency", node.concurrencies),
        ("rate", node.rates),
        ("description", node.descriptions),
        ("sleep", node.sleeps),
        ("wait", node.waits),
    ]
    for part, items in firsts:
        if items:
            put((*base, part), items[0].span)
    put((*base, "kind"), node.async_keyword)
    for need in node.needs:
        put((*base, "needs"), need.span)
        put((*base, "needs", need.value), need.span)
