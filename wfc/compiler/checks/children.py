"""Child-workflow stages: `stage enrich runs enrich_customer { … }`.

Two passes. `resolve_children` (right after names) finds the workflow a stage runs, in
the file or in a file it imports, refuses calls that come back round (A runs B runs A,
across files), checks that workflow on its own (its file, with its own imports) and
gives the stage that workflow's output as its output; settings a child stage cannot
have are reported here. `check_child_inputs` (after the graph) checks what reaches the
stage (the previous group's output, `input from`'s stage, or nothing with `input none`)
against the child workflow's input, field by field, as the graph pass does for a
stage's declared input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.checks.graph import group_output
from wfc.compiler.diagnostics import Diagnostic, Label, Severity, did_you_mean
from wfc.compiler.loader import LoadedModule, Program
from wfc.compiler.names import class_name as pascal
from wfc.compiler.schema import record_json_schema
from wfc.compiler.source import Span

Checker = Callable[[Program], tuple[model.WorkflowModel | None, list[Diagnostic]]]


def resolve_children(an: Analysis, check: Checker) -> None:
    """Resolve each `runs <workflow>` and give its stage the child's output."""
    wf = an.workflow
    if wf is None:
        return
    for stage in wf.stages:
        facts = an.stages.get(stage.name.value)
        if stage.runs is None or facts is None or facts.node is not stage:
            continue
        ok = _check_settings(an, stage)
        if not stage.inputs:
            facts.input_source, facts.input = "flow", None  # checked by `check_child_inputs`
        checked = _resolve(an, wf, stage.runs, check)
        if checked is None or not ok:
            an.broken.add(f"stage:{stage.name.value}")
            facts.output = model.Record(name=f"{pascal(stage.name.value)}Output", fields=())
            an.broken.add(facts.output.name)  # unknown: nothing is compared against it
            continue
        _adopt(an, facts, checked)


# -- settings ------------------------------------------------------------------

_NOT_ON_A_CHILD = (
    ("outputs", "output", "its output is the child workflow's output"),
    ("configs", "config", "the child workflow's stages have their own config"),
    ("ai_presets", "ai", "the child workflow's stages have their own config"),
    ("maps", "map", "run the child once per item by mapping a stage inside it"),
    ("polls", "poll", "the stage waits for the child run without polling"),
    ("timeouts", "timeout", "bound the child workflow's own stages instead"),
    ("concurrencies", "concurrency", "limit the child workflow's own stages instead"),
    ("rates", "rate", "limit the child workflow's own stages instead"),
)


def _check_settings(an: Analysis, stage: ast.Stage) -> bool:
    assert stage.runs is not None
    found: list[tuple[str, Span, str]] = []
    if stage.async_keyword is not None:
        found.append(("async", stage.async_keyword, "it waits for the child without a worker"))
    for spec in stage.inputs:
        if isinstance(spec, ast.RecordBody | ast.TypeRef):
            found.append(("input { … }", spec.span, "its input is the child workflow's input"))
    for attr, what, why in _NOT_ON_A_CHILD:
        items: tuple[ast.RecordSpec | ast.Map | ast.Poll | ast.Duration, ...] = getattr(stage, attr)
        found += [(what, item.span, why) for item in items]
    for what, span, why in found:
        an.error(
            "WF462",
            f"a child stage cannot have `{what}`",
            span,
            label=f"`{stage.name.value}` runs workflow `{stage.runs.value}`",
            help=f"remove it: {why}",
        )
    return not found


# -- finding and checking the child workflow ---------------------------------------------


def _modules_in_scope(program: Program) -> Iterator[LoadedModule]:
    if program.root is not None:
        yield program.root
    yield from program.imported_modules()


def _all_workflows(program: Program) -> dict[str, tuple[ast.Workflow, Path]]:
    found: dict[str, tuple[ast.Workflow, Path]] = {}
    for key, loaded in program.modules.items():
        for w in loaded.module.workflows:
            found.setdefault(w.id.value, (w, key))
    return found


def _calls_back(
    workflows: dict[str, tuple[ast.Workflow, Path]], start: str, target: str
) -> list[str] | None:
    """The chain of `runs` from `start` that reaches `target`, or None."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        if current == target:
            return path
        if current in seen or current not in workflows:
            continue
        seen.add(current)
        for s in workflows[current][0].stages:
            if s.runs is not None:
                stack.append((s.runs.value, [*path, s.runs.value]))
    return None


def _resolve(
    an: Analysis, wf: ast.Workflow, ref: ast.Name, check: Checker
) -> model.WorkflowModel | None:
    visible = {w.id.value: w for m in _modules_in_scope(an.program) for w in m.module.workflows}
    if ref.value not in visible:
        an.error(
            "WF460",
            f"unknown workflow `{ref.value}`",
            ref.span,
            label="no workflow of this file or of the files it imports has this id",
            help=did_you_mean(ref.value, visible)
            or f'`import` the file that declares `workflow {ref.value}`, e.g. `import "{ref.value}.wf"`',
        )
        return None
    everything = _all_workflows(an.program)
    chain = _calls_back(everything, ref.value, wf.id.value)
    if chain is not None:
        an.error(
            "WF461",
            "workflows run each other in a cycle: " + " -> ".join([wf.id.value, *chain]),
            ref.span,
            label=f"`{wf.id.value}` runs `{ref.value}` here",
            help="a workflow cannot run itself, directly or through its children: break the cycle",
        )
        return None
    key = everything[ref.value][1]
    if key == _root_key(an.program):
        return None  # the file's own workflow: only itself, a cycle reported above
    checked, found = check(Program(root=an.program.modules[key], modules=an.program.modules))
    errors = [d for d in found if d.severity is Severity.ERROR]
    if checked is None or errors:
        an.error(
            "WF464",
            f"workflow `{ref.value}` has errors",
            ref.span,
            label="run by this stage",
            help=f"run `wfc check {key.name}` and fix them first",
            notes=[d.message for d in errors[:1]],
        )
        return None
    return checked


def _root_key(program: Program) -> Path | None:
    return next((k for k, m in program.modules.items() if m is program.root), None)


# -- adopting the child's types ------------------------------------------------------


def _renamed(an: Analysis, record: model.Record, name: str) -> model.Record:
    """The child's inline input/output under a name of this workflow (`EnrichOutput`);
    a declared type keeps its name."""
    if record.declared:
        return record
    return replace(record, name=name if name not in an.declared_at else name + "Record")


def _named_in(t: model.Type) -> Iterator[model.Record | model.EnumType]:
    match t:
        case model.ListOf(item=inner) | model.MapOf(value=inner) | model.Optional(inner=inner):
            yield from _named_in(inner)
        case model.EnumType():
            yield t
        case model.Record():
            yield t
            for f in t.fields:
                yield from _named_in(f.type)


def _adopt(an: Analysis, facts: StageFacts, child: model.WorkflowModel) -> None:
    stage = facts.node
    assert stage.runs is not None
    base = pascal(stage.name.value)
    output = _renamed(an, child.output, f"{base}Output")
    for named in _named_in(output):
        if not isinstance(named, model.EnumType) and not named.declared:
            continue
        mine = an.enums.get(named.name) or an.records.get(named.name)
        if mine is None and named.name not in an.declared_at:
            if isinstance(named, model.EnumType):
                an.enums[named.name] = named
            continue
        if mine != named:
            an.error(
                "WF465",
                f"workflow `{child.id}` declares its own `{named.name}`, "
                f"which differs from this workflow's",
                stage.runs.span,
                label=f"its output uses `{named.name}`",
                labels=(Label(span=an.declared_at[named.name], message="declared here"),)
                if named.name in an.declared_at
                else (),
                help="declare the type once, in a file both workflows import",
            )
            an.broken.add(f"stage:{stage.name.value}")
    facts.output = output
    facts.child = model.ChildModel(
        workflow_id=child.id,
        input_schema=record_json_schema(child.input),
        output_schema=record_json_schema(child.output),
    )
    an.child_inputs[stage.name.value] = child.input


# -- what reaches the child --------------------------------------------------------------


def check_child_inputs(an: Analysis) -> None:
    """What each child stage receives, against the child workflow's input."""
    for sid, facts in an.stages.items():
        target = an.child_inputs.get(sid)
        if target is None:
            continue
        stage = facts.node
        facts.input = _renamed(an, target, f"{pascal(sid)}Input")
        if f"stage:{sid}" in an.broken or facts.group is None:
            continue
        source, what = _arriving(an, facts)
        if source is None or source.name in an.broken:
            continue
        assert stage.runs is not None
        for problem, tf in _mismatches(source, target):
            an.error(
                "WF463",
                f"workflow `{stage.runs.value}` needs `{tf.name}: {model.describe(tf.type)}` "
                f"in its input, but {what} {problem}",
                stage.runs.span,
                label=f"`{sid}` hands {what} to `{stage.runs.value}`",
                notes=[_declared_where(tf, stage.runs.value)] if tf.node else [],
                help="make the previous stage produce it, use `input from <stage>`, "
                "or give the child's field a default",
            )


def _declared_where(tf: model.RecordField, workflow: str) -> str:
    """Where the child declares a field (its file by name, so the text is the same
    wherever the files are)."""
    assert tf.node is not None
    line, col = tf.node.span.file.line_col(tf.node.span.start)
    where = f"{tf.node.span.file.path.name}:{line}:{col}"
    return f"`{tf.name}` is declared in the input of `{workflow}`, at {where}"


def _arriving(an: Analysis, facts: StageFacts) -> tuple[model.Record | None, str]:
    if facts.input_source == "none":
        return model.Record(name="Nothing", fields=()), "nothing (`input none`)"
    if facts.input_source == "stage" and facts.input_from in an.stages:
        source = an.stages[facts.input_from]
        if source.map is not None:
            return None, ""
        return source.output, f"the output of `{facts.input_from}`"
    assert facts.group is not None
    if facts.group == 1:
        return an.workflow_input, "the workflow input"
    group = an.groups[facts.group - 2]
    what = f"the output of `{group[0]}`" if len(group) == 1 else "the previous parallel group"
    return group_output(an, facts.group - 2), what


def _mismatches(
    source: model.Record, target: model.Record
) -> Iterator[tuple[str, model.RecordField]]:
    for tf in target.fields:
        sf = source.field_named(tf.name)
        if sf is None:
            if tf.required:
                yield "does not provide it", tf
        elif not model.assignable(sf.type, tf.type):
            yield f"provides `{model.describe(sf.type)}`", tf
