"""The last pass: every class the generated package defines has a name of its own.

Code generation turns stage ids into class names (`load_data` → `LoadData`, then
`LoadDataContext`, `LoadDataStage`, `LoadDataInput`, …) and puts them in one
namespace with the declared types and enums and the names the templates import.
Two sources that become one name (`load_data` and `loadData`, `a_` and `a`, a
type `SStage` beside a stage `s`, a stage `stage` whose context would be
`StageContext`) give a package that redefines a class or does not import. This
pass works on the checked model, so it sees exactly the names codegen will use.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from wfc.compiler import model
from wfc.compiler.checks.context import Analysis
from wfc.compiler.diagnostics import Label
from wfc.compiler.names import class_name
from wfc.compiler.reserved import RESERVED_CLASS_NAMES
from wfc.compiler.source import Span


@dataclass(slots=True, frozen=True)
class _Binding:
    """Who defines a generated name: a declared type or enum, a stage, or the workflow."""

    owner: str
    span: Span
    declared: bool = False
    record: model.Record | model.RootInput | None = None


@dataclass(slots=True)
class _Namespace:
    """The package's generated class names so far, and the names its modules import."""

    an: Analysis
    imported: set[str]
    names: dict[str, _Binding]


def check_generated_names(an: Analysis, wf: model.WorkflowModel) -> None:
    """Report generated class names defined twice, and fields that would hide a class."""
    stage_classes = {
        class_name(s.id) + suffix
        for s in wf.stages
        for suffix in ("Context", "Stage", "CheckContext")
    }
    # A stage `check` clashes only where `CheckContext` is imported (an async stage): render
    # the package to know, only in the rare case that a stage class is such a name.
    imported = imported_names(wf) if stage_classes & RESERVED_CLASS_NAMES else set()
    space = _Namespace(an, imported, {})
    names = space.names
    for name, span in an.declared_at.items():
        what = "enum" if name in an.enums else "type"
        names[name] = _Binding(owner=f"{what} `{name}`", span=span, declared=True)
    assert an.workflow is not None
    wf_span = an.workflow.id.span
    for record in (wf.input, wf.output):
        _add(space, record.name, _Binding(f"workflow `{wf.id}`", wf_span, record=record))
    for signal in wf.signals:
        span = signal.node.name.span if signal.node is not None else wf_span
        _add(
            space,
            signal.payload.name,
            _Binding(f"signal `{signal.name}`", span, record=signal.payload),
        )
    if not _stage_classes_are_distinct(an, wf):
        return
    for stage in wf.stages:
        owner, span = f"stage `{stage.id}`", _name_span(an, stage)
        for emitted in _emitted_records(stage):
            _add(space, emitted.name, _Binding(owner, span, record=emitted))
        if stage.builtin or stage.child is not None:
            continue
        suffixes = ["Context", "Stage", *(["CheckContext"] if stage.is_async else [])]
        for suffix in suffixes:
            _add(space, class_name(stage.id) + suffix, _Binding(owner, span))
    _check_fields(an, wf, names)


def _name_span(an: Analysis, stage: model.StageModel) -> Span:
    """Where the stage's id is written."""
    return an.stages[stage.id].node.name.span


def _emitted_records(stage: model.StageModel) -> list[model.Record | model.RootInput]:
    """The models codegen writes for a stage: only the output of a sleep, a wait or a child."""
    if stage.builtin or stage.child is not None:
        return [stage.output]
    return [stage.input, stage.output, stage.config]


def _stage_classes_are_distinct(an: Analysis, wf: model.WorkflowModel) -> bool:
    """`load_data` and `loadData` are both `LoadData`: one error for the pair, not one per
    class. An id whose class name the templates already use (`stage` → `StageContext`
    is caught later, per class)."""
    first: dict[str, model.StageModel] = {}
    ok = True
    for stage in wf.stages:
        if stage.builtin or stage.child is not None:
            continue
        pascal = class_name(stage.id)
        other = first.setdefault(pascal, stage)
        if other is stage:
            continue
        an.error(
            "WF209",
            f"stages `{other.id}` and `{stage.id}` both become the class name `{pascal}` "
            "in the generated code",
            _name_span(an, stage),
            label="same class name as another stage",
            labels=(Label(span=_name_span(an, other), message=f"`{other.id}` is here"),),
            help="rename one of the two stages so they differ by more than `_` and case",
        )
        ok = False
    return ok


def imported_names(wf: model.WorkflowModel) -> set[str]:
    """The names the generated modules import (`CheckContext` only with an async stage):
    read from the rendered code itself, so the rule is the templates' own."""
    from wfc.compiler.codegen import render_init, render_models, render_stages

    found: set[str] = set()
    for text in (render_models(wf), render_stages(wf), render_init(wf)):
        for node in ast.parse(text).body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return found


def _add(space: _Namespace, name: str, new: _Binding) -> None:
    an, names = space.an, space.names
    if name in RESERVED_CLASS_NAMES and (new.record is not None or name in space.imported):
        an.error(
            "WF209",
            f"{new.owner} would generate the class `{name}`, a name the generated code "
            "already imports or uses",
            new.span,
            label=f"becomes `{name}`",
            help="rename it",
        )
        return
    old = names.get(name)
    if old is None:
        names[name] = new
        return
    if old.declared and new.record is not None and old.owner.endswith(f"`{name}`"):
        return  # the stage or workflow uses the declared type itself (`input T`)
    if old.owner == new.owner or (old.record is not None and old.record == new.record):
        return
    if old.declared:  # the user chose the type's name; the stage's classes follow its id
        an.error(
            "WF209",
            f"{old.owner} has the name of a class generated for {new.owner}",
            old.span,
            label=f"`{name}` is also generated for {new.owner}",
            labels=(Label(span=new.span, message=f"{new.owner} is here"),),
            help="rename the type",
        )
        return
    an.error(
        "WF209",
        f"{new.owner} would generate the class `{name}`, which {old.owner} generates too",
        new.span,
        label=f"becomes `{name}`",
        labels=(Label(span=old.span, message=f"{old.owner} is here"),),
        help="rename one of the two",
    )


def _check_fields(an: Analysis, wf: model.WorkflowModel, names: dict[str, _Binding]) -> None:
    """A field named like a class of the package hides it from the fields after it
    (`L: L = a, b: L` reads the field, not the enum)."""
    records = [*an.records.values(), wf.input, wf.output, *(s.payload for s in wf.signals)]
    for stage in wf.stages:
        records += [r for r in _emitted_records(stage) if isinstance(r, model.Record)]
    seen: set[int] = set()
    for record in records:
        if id(record) in seen:
            continue
        seen.add(id(record))
        for f in record.fields:
            if f.name in names and f.node is not None:
                an.error(
                    "WF205",
                    f"`{f.name}` cannot be a field name: the generated models have a class "
                    "of that name",
                    f.node.name.span,
                    label=f"hides the class `{f.name}`",
                    help=f"rename the field, e.g. `{f.name.lower()}_value`",
                )
