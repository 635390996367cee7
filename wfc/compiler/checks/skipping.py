"""Pass 5: skipped stages. Which stages may be skipped, and who must be ready for it.

A stage whose `when` is false is skipped, and so is a stage all of whose
dependencies were skipped (the runtime's rule; a stage's dependencies are its
`needs`, its `input from` stage, and the previous group when its input comes
from the flow). A stage with another dependency still runs, and then sees
nothing from the skipped one: it must take it as optional (`needs review?`),
and it cannot take its whole input from it. A `?` that can never matter, and
a workflow output that may never be produced, are warned about.

`find_skippable` runs inside the graph pass, which needs it to type what a
parallel group hands on; the checks here run after the graph is known.
"""

from __future__ import annotations

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, SkipCause, StageFacts
from wfc.compiler.diagnostics import Label


def dependencies(an: Analysis, facts: StageFacts) -> list[str]:
    """The earlier stages `facts`' stage works on; all of them skipped means it is skipped.

    The stage a `map` takes its list from is not one: a skipped stage's list maps as no
    items, so the mapped stage runs and completes with an empty list.
    """
    found = [n.value for n in facts.node.needs]
    if facts.input_from is not None:
        found.append(facts.input_from)
    if facts.input_source == "flow" and facts.group is not None and facts.group > 1:
        found.extend(an.groups[facts.group - 2])
    known = [d for d in dict.fromkeys(found) if d in an.stages and an.stages[d].group is not None]
    return known


def find_skippable(an: Analysis) -> dict[str, SkipCause]:
    """Every stage that may be skipped, with the `when` that can cause it, in flow order."""
    skippable: dict[str, SkipCause] = {}
    for group in an.groups:
        for sid in group:
            facts = an.stages[sid]
            if facts.node.conditions:
                skippable[sid] = SkipCause(stage=sid, span=facts.node.conditions[0].span)
                continue
            deps = dependencies(an, facts)
            if deps and all(d in skippable for d in deps):
                skippable[sid] = skippable[deps[0]]
    return skippable


def check_skipping(an: Analysis) -> None:
    """Needs and inputs of possibly skipped stages, useless `?`, a possibly missing output."""
    for sid, facts in an.stages.items():
        if facts.group is None or f"stage:{sid}" in an.broken:
            continue
        deps = dependencies(an, facts)
        _check_needs(an, sid, facts, deps)
        _check_input_source(an, sid, facts, deps)
    _check_workflow_output(an)


def _cause_label(an: Analysis, dep: str) -> Label:
    cause = an.skippable[dep]
    if cause.stage == dep:
        return Label(span=cause.span, message=f"`{dep}` is skipped when this is false")
    return Label(
        span=cause.span,
        message=f"`{dep}` is skipped when `{cause.stage}` is, which is when this is false",
    )


def _check_needs(an: Analysis, sid: str, facts: StageFacts, deps: list[str]) -> None:
    optional = {o.value: o for o in facts.node.optional_needs}
    for need in facts.node.needs:
        dep = need.value
        if dep not in an.stages or an.stages[dep].group is None:
            continue
        alone = [d for d in deps if d != dep] == []
        if dep in optional:
            _check_optional_mark(an, sid, dep, optional[dep], alone=alone)
        elif dep in an.skippable and not alone:
            gathered = an.stages[dep].gathered()
            model_name = model.describe(gathered) if gathered is not None else "its output"
            an.error(
                "WF411",
                f"stage `{sid}` needs `{dep}`, which may be skipped",
                need.span,
                label=f"`{sid}` still runs when `{dep}` is skipped",
                labels=(_cause_label(an, dep),),
                help=f"take it as optional: `needs {dep}?` (then `ctx.{dep}` is "
                f"`{model_name} | None`)",
            )


def _check_optional_mark(an: Analysis, sid: str, dep: str, mark: ast.Name, *, alone: bool) -> None:
    if an.stages[dep].may_be_null:
        return  # a wait that times out into null: the `?` is what it asks for
    if dep not in an.skippable:
        message = f"`{dep}` is never skipped, so `{dep}?` is never None"
        label = f"`{dep}` has no `when`, and not all it depends on may be skipped"
    elif alone:
        message = f"`{sid}` is skipped whenever `{dep}` is, so `{dep}?` is never None"
        label = f"`{sid}` depends on nothing else"
    else:
        return
    an.warning(
        "WF412",
        message,
        mark.span,
        label=label,
        help=f"remove the `?`: `needs {dep}`",
    )


def _input_source(an: Analysis, facts: StageFacts) -> str | None:
    """The one stage whose output is this stage's whole input, if there is one (a mapped
    stage has none; a mapped stage as a whole input is WF421's business)."""
    if facts.map is not None:
        return None
    source = None
    if facts.input_from is not None:
        source = facts.input_from
    elif facts.input_source == "flow" and facts.group is not None and facts.group > 1:
        previous = an.groups[facts.group - 2]
        source = previous[0] if len(previous) == 1 else None
    if source is not None and source in an.stages and an.stages[source].map is not None:
        return None
    return source


def _check_input_source(an: Analysis, sid: str, facts: StageFacts, deps: list[str]) -> None:
    source = _input_source(an, facts)
    if source is None or source not in an.skippable or deps == [source]:
        return
    spec = facts.node.inputs[0] if facts.node.inputs else None
    others = ", ".join(f"`{d}`" for d in deps if d != source)
    an.error(
        "WF414",
        f"stage `{sid}` takes its input from `{source}`, which may be skipped while "
        f"`{sid}` still runs",
        spec.span if spec is not None else facts.node.name.span,
        label=f"`{sid}` also depends on {others}, so it runs without this input",
        labels=(_cause_label(an, source),),
        help=f"use `input none` with `needs {source}?`, or drop the other dependencies so "
        f"`{sid}` is skipped with `{source}`",
    )


def _check_workflow_output(an: Analysis) -> None:
    wf = an.workflow
    if wf is None or not wf.outputs or not an.groups or an.workflow_output is None:
        return
    if not any(f.required for f in an.workflow_output.fields):
        return
    last = [sid for sid in an.groups[-1] if sid in an.skippable]
    if not last:
        return
    names = ", ".join(f"`{sid}`" for sid in last)
    an.warning(
        "WF413",
        f"the workflow output may be missing: {names} of the last group may be skipped",
        wf.outputs[0].span,
        label="produced by the last group of the flow",
        labels=tuple(_cause_label(an, sid) for sid in last),
        help="end the flow with a stage that always runs (no `when`, and a dependency "
        "that is never skipped), taking the skipped stages as optional (`needs x?`)",
    )
