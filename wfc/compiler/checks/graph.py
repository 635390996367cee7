"""Pass 3: the graph. Flow groups, ordering of `needs`, cycles, and what flows between stages.

Groups come from `flow`. A stage may only read (through `needs` or
`input from`) stages of earlier groups; a dependency cycle is reported once,
with its full path, instead of as one ordering error per edge. Then each
stage's declared input is checked structurally against what reaches it: the
workflow input for the first group, else the previous group's output (keyed
by stage id when that group is parallel); and the workflow output against
what the last group produces.
"""

from __future__ import annotations

import difflib
import itertools

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.checks.names import unknown_stage
from wfc.compiler.checks.skipping import find_skippable
from wfc.compiler.diagnostics import Label
from wfc.compiler.names import class_name as pascal
from wfc.compiler.source import Span


def check_graph(an: Analysis) -> None:
    """Build groups, then check ordering, cycles, inputs and the workflow output."""
    wf = an.workflow
    if wf is None:
        return
    _build_groups(an, wf)
    cyclic = _check_cycles(an)
    _check_order(an, cyclic)
    _resolve_input_from(an)
    an.skippable = find_skippable(an)
    if an.groups and _FLOW_MISSPELT not in an.broken:
        _check_inputs(an)
        _check_workflow_output(an, wf)


_FLOW_MISSPELT = "flow:unknown-step"
"""In `an.broken` when the flow names a stage that does not exist: its groups are not the ones
meant, so what flows between them is not checked (each mismatch would be that typo again)."""


def _build_groups(an: Analysis, wf: ast.Workflow) -> None:
    if not wf.stages:
        an.error(
            "WF406",
            f"workflow `{wf.id.value}` has no stages",
            wf.id.span,
            help="declare a stage: `stage name { output { … } }`, then `flow name`",
        )
        return
    if not wf.flows:
        first = wf.stages[0].name.value
        an.error(
            "WF405",
            f"workflow `{wf.id.value}` has no `flow`",
            wf.id.span,
            label="the order of its stages is not given",
            help=f"add e.g. `flow {first} -> …` listing every stage",
        )
        return
    for extra in wf.flows[1:]:
        an.error(
            "WF208",
            "`flow` is given more than once",
            extra.span,
            labels=(Label(span=wf.flows[0].span, message="first given here"),),
            help="join the two into one `flow a -> b -> …`",
        )
    placed: dict[str, Span] = {}
    meant: set[str] = set()  # stages an unknown step is a typo of: WF202 already names them
    for step in wf.flows[0].steps:
        group: list[str] = []
        for ref in step.stages:
            sid = ref.value
            if sid not in an.stages:
                unknown_stage(an, ref)
                meant.update(difflib.get_close_matches(sid, sorted(an.stages), n=1, cutoff=0.6))
                an.broken.add(_FLOW_MISSPELT)
                continue
            if sid in placed:
                an.error(
                    "WF402",
                    f"stage `{sid}` appears more than once in the flow",
                    ref.span,
                    label="placed again here",
                    labels=(Label(span=placed[sid], message="first placed here"),),
                    help="a stage runs once: keep it in one place",
                )
                continue
            placed[sid] = ref.span
            group.append(sid)
            an.stages[sid].group = len(an.groups) + 1
        if group:
            an.groups.append(tuple(group))
    for sid, facts in an.stages.items():
        if sid in meant and sid not in placed:
            an.broken.add(f"stage:{sid}")
        elif sid not in placed:
            an.error(
                "WF401",
                f"stage `{sid}` is not in the flow",
                facts.node.name.span,
                label="declared here but never run",
                labels=(Label(span=wf.flows[0].span, message="the flow"),),
                help=f"add `{sid}` to `flow`, or remove the stage",
            )
            an.broken.add(f"stage:{sid}")


def _dependencies(facts: StageFacts) -> list[ast.Name]:
    deps = list(facts.node.needs)
    spec = facts.node.inputs[0] if facts.node.inputs else None
    if isinstance(spec, ast.InputFrom) and facts.map is None:
        deps.append(spec.stage)
    return deps


def _check_cycles(an: Analysis) -> set[tuple[str, str]]:
    """Report each dependency cycle once; return its edges so ordering skips them."""
    edges = {
        sid: [d.value for d in _dependencies(f) if d.value in an.stages]
        for sid, f in an.stages.items()
    }
    cyclic: set[tuple[str, str]] = set()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in edges[node]:
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                pairs = list(itertools.pairwise(cycle))
                if not cyclic.issuperset(pairs):
                    _report_cycle(an, cycle)
                cyclic.update(pairs)
            elif dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for sid in an.stages:
        if sid not in state:
            visit(sid)
    return cyclic


def _report_cycle(an: Analysis, cycle: list[str]) -> None:
    first = an.stages[cycle[0]]
    ref = next(d for d in _dependencies(first) if d.value == cycle[1])
    labels = []
    for a, b in itertools.pairwise(cycle[1:]):
        dep = next(d for d in _dependencies(an.stages[a]) if d.value == b)
        labels.append(Label(span=dep.span, message=f"`{a}` needs `{b}` here"))
    path = " -> ".join(cycle)
    an.error(
        "WF404",
        f"dependency cycle: {path}",
        ref.span,
        label=f"`{cycle[0]}` needs `{cycle[1]}` here",
        labels=labels,
        help="a stage can only need stages that run before it; remove one of these `needs`",
    )
    for sid in cycle:
        an.broken.add(f"stage:{sid}")


def _check_order(an: Analysis, cyclic: set[tuple[str, str]]) -> None:
    for sid, facts in an.stages.items():
        if facts.group is None:
            continue
        for dep in _dependencies(facts):
            other = an.stages.get(dep.value)
            if other is None or other.group is None or (sid, dep.value) in cyclic:
                continue
            if other.group >= facts.group:
                where = "in the same parallel group as" if other.group == facts.group else "after"
                an.error(
                    "WF403",
                    f"stage `{sid}` needs `{dep.value}`, which runs {where} it",
                    dep.span,
                    label=f"`{dep.value}` runs in group {other.group}, `{sid}` in group {facts.group}",
                    labels=(
                        Label(span=other.node.name.span, message=f"`{dep.value}` is declared here"),
                    ),
                    help=f"move `{dep.value}` before `{sid}` in the flow",
                )
                an.broken.add(f"stage:{sid}")


def _resolve_input_from(an: Analysis) -> None:
    for facts in an.stages.values():
        if facts.input_source == "stage" and facts.input_from in an.stages:
            source = an.stages[facts.input_from]
            if source.map is None:  # a mapped stage's output is a list: WF421, later
                facts.input = source.output


def group_output(
    an: Analysis, index: int, *, skipped_as_optional: bool = True
) -> model.Record | None:
    """What group `index` (0-based) hands to the next: one stage's output, or a record keyed by stage id.

    In a parallel group, the key of a stage that may be skipped may be absent, so
    its field is optional (`skipped_as_optional`); a single stage's skip is the
    skipping pass's business. A mapped stage hands on a list: its field is one, and
    a group of that stage alone hands on no record (the mapping pass says so, WF421).
    """
    group = an.groups[index]
    outputs = [an.stages[sid].output for sid in group]
    if any(o is None or o.name in an.broken for o in outputs):
        return None  # already reported; comparing against a partial record would cascade
    if len(group) == 1:
        return outputs[0] if an.stages[group[0]].map is None else None
    fields = []
    for sid in group:
        gathered = an.stages[sid].gathered()
        if gathered is None:
            return None
        # A wait that times out into null (`on timeout continue`) may hand on null too.
        skipped = skipped_as_optional and (sid in an.skippable or an.stages[sid].may_be_null)
        field_type: model.Type = model.Optional(inner=gathered) if skipped else gathered
        fields.append(model.RecordField(name=sid, type=field_type))
    return model.Record(name="Group" + "".join(pascal(s) for s in group), fields=tuple(fields))


def _source_description(an: Analysis, index: int) -> tuple[str, Span | None]:
    if index < 0:
        wf = an.workflow
        spec = wf.inputs[0] if wf and wf.inputs else None
        return "the workflow input", spec.span if spec else None
    group = an.groups[index]
    if len(group) == 1:
        node = an.stages[group[0]].node
        span = node.outputs[0].span if node.outputs else node.name.span
        return f"the output of `{group[0]}`", span
    return "the parallel group [" + ", ".join(group) + "] (an object keyed by stage id)", None


def _check_inputs(an: Analysis) -> None:
    for gi, group in enumerate(an.groups):
        source = an.workflow_input if gi == 0 else group_output(an, gi - 1)
        if source is None or source.name in an.broken:
            continue
        for sid in group:
            facts = an.stages[sid]
            if facts.input_source != "flow" or facts.input is None or f"stage:{sid}" in an.broken:
                continue
            if facts.input.name in an.broken:
                continue
            spec = facts.node.inputs[0]
            _compare(
                an,
                source,
                facts.input,
                an_index=gi - 1,
                consumer=f"stage `{sid}`",
                span=spec.span,
                node=facts.node,
            )


def _compare(
    an: Analysis,
    source: model.Record,
    target: model.Record,
    *,
    an_index: int,
    consumer: str,
    span: Span,
    node: ast.Stage | None,
) -> None:
    what, source_span = _source_description(an, an_index)
    labels = (Label(span=source_span, message=f"{what} is declared here"),) if source_span else ()
    for tf in target.fields:
        sf = source.field_named(tf.name)
        field_span = tf.node.span if tf.node else span
        if sf is None:
            if tf.required:
                an.error(
                    "WF311",
                    f"{consumer} needs field `{tf.name}`, which {what} does not provide",
                    field_span,
                    label=f"`{tf.name}: {model.describe(tf.type)}` is required",
                    labels=labels,
                    help=_missing_help(an, tf.name, node),
                )
        elif not model.assignable(sf.type, tf.type):
            an.error(
                "WF312",
                f"{consumer} takes `{tf.name}` as `{model.describe(tf.type)}`, but {what} provides `{model.describe(sf.type)}`",
                field_span,
                label=f"expects `{model.describe(tf.type)}`",
                labels=labels,
                help=f"make the types agree, or make `{tf.name}` optional (`{model.describe(tf.type)}?`) only if null is what arrives",
            )


def _missing_help(an: Analysis, field_name: str, node: ast.Stage | None) -> str:
    providers = [
        sid
        for sid, f in an.stages.items()
        if f.output is not None and f.output.field_named(field_name) and f.map is None
    ]
    if providers and node is not None:
        return f"`{providers[0]}` produces `{field_name}`: use `input none` with `needs {providers[0]}`, or `input from {providers[0]}`"
    return "give the field a default, make it optional (`T?`), or produce it in the previous group"


def _check_workflow_output(an: Analysis, wf: ast.Workflow) -> None:
    if an.workflow_output is None or not wf.outputs or an.workflow_output.name in an.broken:
        return
    # A skipped stage of the last group is warned about by the skipping pass instead.
    last = group_output(an, len(an.groups) - 1, skipped_as_optional=False)
    if last is None:
        return
    _compare(
        an,
        last,
        an.workflow_output,
        an_index=len(an.groups) - 1,
        consumer="the workflow output",
        span=wf.outputs[0].span,
        node=None,
    )
