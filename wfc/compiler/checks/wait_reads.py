"""Pass for what built-in stages read and who reads them: `sleep until` paths, and the
readers of a wait that times out into null.

`sleep until draft.ready_at` reads an instant when its group opens: from the
workflow input or a stage of an earlier group, along record fields, to a
`datetime`. A value that is missing there fails the run (`SLEEP_FAILED`), so the
path must end at a required `datetime` of a stage that always runs — what could
be null is refused here rather than found out by a run.

A wait with `on timeout continue` completes with output null when the timeout
passes first. A stage that needs it takes it as optional (`needs approval?`,
`ctx.approval` is then `ApprovePayload | None`), and none takes its whole input
from it (the runtime refuses the plan otherwise: `signal_problem`). A signal no
stage waits for is warned about: one sent is kept, and nothing ever takes it.

It runs after the graph and skipping passes, when groups and skippable stages are known.
"""

from __future__ import annotations

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.plan import SleepSpec

_DATETIME = model.Primitive(name="datetime")


def check_wait_reads(an: Analysis) -> None:
    """`until` paths, needs and inputs of waits that may be null, unused signals."""
    for sid, facts in an.stages.items():
        if facts.group is None or f"stage:{sid}" in an.broken:
            continue
        if facts.node.sleeps and facts.node.sleeps[0].until is not None:
            path = _until(an, sid, facts, facts.node.sleeps[0].until)
            facts.sleep = SleepSpec(until=path) if path is not None else None
        _check_null_reads(an, sid, facts)
    _check_workflow_output(an)
    _check_unused(an)


# -- `sleep until` ----------------------------------------------------------------------


def _until(
    an: Analysis, sid: str, facts: StageFacts, path: ast.DottedName
) -> tuple[str, ...] | None:
    """The path as names, once it leads to a required datetime; None after reporting."""
    root = path.parts[0]
    start: model.Type | None
    if root.value == "input":
        start = an.workflow_input
    elif root.value in an.stages and root.value != sid:
        source = an.stages[root.value]
        if not _runs_earlier(an, sid, facts, root):
            return None
        if root.value in an.skippable or source.may_be_null:
            why = "may be skipped" if root.value in an.skippable else "may time out into null"
            _not_instant(an, path, f"`{root.value}` {why}, and then there is no instant")
            return None
        start = source.gathered()
    else:
        known = ["input", *(s for s in an.stages if s != sid)]
        an.error(
            "WF251",
            f"unknown name `{root.value}` in the `sleep until` of `{sid}`",
            root.span,
            label="not `input` or an earlier stage",
            help=did_you_mean(root.value, known)
            or "`sleep until` reads a datetime at `input.<field>` or `<stage>.<field>`",
        )
        return None
    if start is None or _broken(an, start):
        return None  # the record has errors of its own, already reported
    end = _walk(an, path, start)
    if end is None:
        return None
    if isinstance(end, model.Optional) and end.inner == _DATETIME:
        _not_instant(an, path, f"`{path.text}` is `datetime?`, and a missing instant fails the run")
        return None
    if end != _DATETIME:
        _not_instant(an, path, f"`{path.text}` is `{model.describe(end)}`, not `datetime`")
        return None
    return tuple(p.value for p in path.parts)


def _runs_earlier(an: Analysis, sid: str, facts: StageFacts, root: ast.Name) -> bool:
    other = an.stages[root.value]
    if other.group is None or facts.group is None:
        return False  # not in the flow: already reported
    if other.group < facts.group:
        return True
    where = "in the same parallel group as" if other.group == facts.group else "after"
    an.error(
        "WF431",
        f"stage `{sid}` sleeps until a time `{root.value}` gives, but `{root.value}` runs "
        f"{where} it",
        root.span,
        label=f"`{root.value}` runs in group {other.group}, `{sid}` in group {facts.group}",
        labels=(Label(span=other.node.name.span, message=f"`{root.value}` is declared here"),),
        help=f"the instant is read when `{sid}` starts: move `{root.value}` before `{sid}` "
        "in the flow",
    )
    return False


def _broken(an: Analysis, t: model.Type) -> bool:
    base = t.inner if isinstance(t, model.Optional) else t
    return isinstance(base, model.Record) and base.name in an.broken


def _walk(an: Analysis, path: ast.DottedName, start: model.Type) -> model.Type | None:
    """The type at the end of the path's fields (optional if a step may be null)."""
    current, nullable = start, False
    for index, part in enumerate(path.parts[1:], start=1):
        base = current.inner if isinstance(current, model.Optional) else current
        read = ".".join(p.value for p in path.parts[:index])
        if not isinstance(base, model.Record):
            an.error(
                "WF251",
                f"`{read}` is `{model.describe(current)}`, which has no fields",
                part.span,
                label=f"no field `{part.value}`",
                help=f"`sleep until` follows the fields of records; `{read}` is the end of the path",
            )
            return None
        found = base.field_named(part.value)
        if found is None:
            if base.name not in an.broken:
                names = [f.name for f in base.fields]
                an.error(
                    "WF251",
                    f"`{read}` has no field `{part.value}`",
                    part.span,
                    label=f"not a field of `{base.name}`",
                    help=did_you_mean(part.value, names)
                    or "its fields: " + (", ".join(f"`{n}`" for n in names) or "none"),
                )
            return None
        nullable = nullable or isinstance(current, model.Optional)
        current = found.type
    if nullable and not isinstance(current, model.Optional):
        return model.Optional(inner=current)
    return current


def _not_instant(an: Analysis, path: ast.DottedName, why: str) -> None:
    an.error(
        "WF380",
        f"`sleep until {path.text}` needs a `datetime` that is always there: {why}",
        path.span,
        label="not a required `datetime`",
        help="sleep until a required `datetime` field (an ISO-8601 instant; one without "
        "a zone is UTC), e.g. `sleep until input.publish_at` with `publish_at: datetime`",
    )


# -- readers of a wait that may be null ---------------------------------------------------


def _null_label(an: Analysis, wait: str) -> Label:
    node = an.stages[wait].node.waits[0]
    span = node.on_timeout[0].span if node.on_timeout else node.span
    return Label(span=span, message=f"`{wait}` outputs null when its timeout passes first")


def _check_null_reads(an: Analysis, sid: str, facts: StageFacts) -> None:
    optional = {o.value for o in facts.node.optional_needs}
    for need in facts.node.needs:
        dep = an.stages.get(need.value)
        if dep is None or not dep.may_be_null or need.value in optional:
            continue
        payload = dep.output.name if dep.output is not None else "its payload"
        an.error(
            "WF430",
            f"stage `{sid}` needs `{need.value}`, a wait that may time out into null",
            need.span,
            label=f"`{sid}` runs on when `{need.value}` times out",
            labels=(_null_label(an, need.value),),
            help=f"take it as optional: `needs {need.value}?` (then `ctx.{need.value}` is "
            f"`{payload} | None`)",
        )
    source = _whole_input_source(an, facts)
    if source is None or not an.stages[source].may_be_null:
        return
    spec = facts.node.inputs[0] if facts.node.inputs else None
    an.error(
        "WF430",
        f"stage `{sid}` takes its whole input from `{source}`, a wait that may time out into null",
        spec.span if spec is not None else facts.node.name.span,
        label="an input is a record, never null",
        labels=(_null_label(an, source),),
        help=f"use `input none` with `needs {source}?`, and read `ctx.{source}`",
    )


def _whole_input_source(an: Analysis, facts: StageFacts) -> str | None:
    if facts.input_from is not None:
        return facts.input_from if facts.input_from in an.stages else None
    if facts.input_source == "flow" and facts.group is not None and facts.group > 1:
        previous = an.groups[facts.group - 2]
        return previous[0] if len(previous) == 1 else None
    return None


def _check_workflow_output(an: Analysis) -> None:
    wf = an.workflow
    if wf is None or not wf.outputs or not an.groups or len(an.groups[-1]) != 1:
        return
    last = an.groups[-1][0]
    if not an.stages[last].may_be_null:
        return
    an.error(
        "WF430",
        f"the workflow output comes from `{last}`, a wait that may time out into null",
        wf.outputs[0].span,
        label="a workflow output is a record, never null",
        labels=(_null_label(an, last),),
        help=f"end the flow with a stage that takes it as optional (`input none`, `needs {last}?`)",
    )


def _check_unused(an: Analysis) -> None:
    waited = {f.node.waits[0].signal.value for f in an.stages.values() if f.node.waits}
    if waited - set(an.signals):
        return  # a wait names an unknown signal (WF250): likely one of these, misspelt
    for name, signal in an.signals.items():
        if name in waited or signal.node is None:
            continue
        an.warning(
            "WF385",
            f"no stage waits for signal `{name}`",
            signal.node.name.span,
            label="declared, never waited for",
            help=f"add a stage `wait for {name}`, or remove the signal: one sent to a run is "
            "kept and never taken",
        )
