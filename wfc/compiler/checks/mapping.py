"""Passes for `map`: a mapped stage's settings, its list, its items, and who reads its output.

`map split.pages` runs a stage once per item of a list: the path starts at
`input` (the workflow input) or at a stage of an earlier group, and follows
record fields to a list (a list that is missing at run time, through an optional
field or a skipped stage, maps as no items). One item is the stage's input, so
a declared `input` must be what an item is (or a part of it, as for a flow
input), and `input from`/`input none` have no place on it. What the stage
hands on is a list (of `ItemResult`s with `on failure continue`), so a stage
cannot take it as its whole input, nor can the workflow output be it: they read
it with `needs`, as a typed list.

`check_map_settings` runs before the graph pass, which needs each stage's
failure policy to type what a parallel group hands on; `check_maps` runs after
it, when groups are known.
"""

from __future__ import annotations

from wfc.compiler import ast, model
from wfc.compiler.checks.context import Analysis, StageFacts
from wfc.compiler.diagnostics import Label, did_you_mean
from wfc.plan import MAP_AT_MOST_LIMIT

_POLICIES = ("fail", "continue")


def check_map_settings(an: Analysis) -> None:
    """Repeats, `at most` in 1..1000 and the failure policy of every `map`."""
    for facts in an.stages.values():
        if facts.map is None:
            continue
        node = facts.node
        for items, what in (
            (node.maps, "map"),
            (facts.map.node.at_most, "at most"),
            (facts.map.node.on_failure, "on failure"),
        ):
            for extra in items[1:]:
                an.error(
                    "WF208",
                    f"`{what}` is given more than once",
                    extra.span,
                    label="repeated here",
                    labels=(Label(span=items[0].span, message="first given here"),),
                    help=f"keep one `{what}`"
                    + ("; a stage runs over one list" if what == "map" else ""),
                )
        _check_at_most(an, facts)
        _check_policy(an, facts)


def _check_at_most(an: Analysis, facts: StageFacts) -> None:
    assert facts.map is not None
    if not facts.map.node.at_most:
        return
    given = facts.map.node.at_most[0]
    value = given.value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAP_AT_MOST_LIMIT:
        facts.map.at_most = value
        return
    an.error(
        "WF332",
        f"`at most` must be a whole number from 1 to {MAP_AT_MOST_LIMIT}, not `{value}`",
        given.span,
        label="items of this stage that run at once",
        help="e.g. `at most 16 at once`; without it, 10 items run at once",
    )


def _check_policy(an: Analysis, facts: StageFacts) -> None:
    assert facts.map is not None
    if not facts.map.node.on_failure:
        return
    given = facts.map.node.on_failure[0]
    if given.value in _POLICIES:
        facts.map.on_item_failure = given.value
        return
    hint = did_you_mean(given.value, _POLICIES)
    an.error(
        "WF332",
        f"unknown failure policy `{given.value}`",
        given.span,
        label="`on failure` takes `fail` or `continue`",
        help=(hint + " " if hint else "")
        + "`fail` fails the stage when an item fails for good; `continue` goes on and "
        "gives each item's output or error",
    )


# -- the list, the items, and who reads the output ---------------------------------


def check_maps(an: Analysis) -> None:
    """Each mapped stage's list and items, then the stages and output that read a mapped stage."""
    for sid, facts in an.stages.items():
        if facts.map is None or facts.group is None or f"stage:{sid}" in an.broken:
            continue
        _check_input_kind(an, sid, facts)
        item = _item_of(an, sid, facts)
        if item is not None:
            facts.map.item = item
            _check_item_fits(an, sid, facts, item)
    if an.groups:
        _check_readers(an)
        _check_workflow_output(an)


def _map_label(facts: StageFacts, sid: str) -> Label:
    assert facts.map is not None
    return Label(span=facts.map.node.span, message=f"`{sid}` runs once per item here")


def _check_input_kind(an: Analysis, sid: str, facts: StageFacts) -> None:
    spec = facts.node.inputs[0] if facts.node.inputs else None
    if not isinstance(spec, ast.InputFrom | ast.InputNone):
        return
    written = f"input from {spec.stage.value}" if isinstance(spec, ast.InputFrom) else "input none"
    reads = (
        f"; read `{spec.stage.value}` with `needs {spec.stage.value}`"
        if isinstance(spec, ast.InputFrom)
        else ""
    )
    an.error(
        "WF333",
        f"mapped stage `{sid}` takes one item as its input, so it cannot have `{written}`",
        spec.span,
        label="the input of a mapped stage is the item",
        labels=(_map_label(facts, sid),),
        help=f"remove `{written}`: the stage reads its item as `ctx.item`{reads}",
    )


def _item_of(an: Analysis, sid: str, facts: StageFacts) -> model.Type | None:
    """The type of one item of the list the stage maps over, or None after reporting."""
    assert facts.map is not None
    over = facts.map.node.over
    root = over.parts[0]
    start: model.Type | None
    if root.value == "input":
        start = an.workflow_input
    elif root.value in an.stages:
        if not _runs_earlier(an, sid, facts, root):
            return None
        source = an.stages[root.value]
        if source.map is not None and source.map.on_item_failure == "continue":
            _results_error(an, sid, over, root.value)
            return None
        start = source.gathered()
    else:
        known = ["input", *(s for s in an.stages if s != sid)]
        an.error(
            "WF240",
            f"unknown name `{root.value}` in the `map` of `{sid}`",
            root.span,
            label="not `input` or a stage",
            help=did_you_mean(root.value, known)
            or "`map` takes a list at `input.<field>` or `<stage>.<field>`",
        )
        return None
    if start is None or _is_broken(an, start):
        return None  # the record has errors of its own, already reported
    return _walk(an, sid, facts, start)


def _runs_earlier(an: Analysis, sid: str, facts: StageFacts, root: ast.Name) -> bool:
    other = an.stages[root.value]
    here = facts.group
    if other.group is None or here is None:
        return False  # not in the flow: already reported
    if other.group < here:
        return True
    if root.value == sid:
        message, label = f"stage `{sid}` maps over its own output", "made by the items themselves"
        help = "map over the workflow input or the output of a stage that runs before it"
    else:
        where = "in the same parallel group as" if other.group == here else "after"
        message = f"stage `{sid}` maps over `{root.value}`, which runs {where} it"
        label = f"`{root.value}` runs in group {other.group}, `{sid}` in group {here}"
        help = f"the list must be there when `{sid}` starts: move `{root.value}` before `{sid}` in the flow"
    an.error(
        "WF420",
        message,
        root.span,
        label=label,
        labels=(Label(span=other.node.name.span, message=f"`{root.value}` is declared here"),),
        help=help,
    )
    return False


def _results_error(an: Analysis, sid: str, over: ast.DottedName, source: str) -> None:
    an.error(
        "WF330",
        f"stage `{sid}` maps over `{source}`, whose list holds results, not outputs",
        over.span,
        label=f"`{source}` goes on past failed items (`on failure continue`)",
        help=f"let a stage pick the outputs first (`input none`, `needs {source}`) and map "
        f"over its list, or give `{source}` `on failure fail`",
    )


def _is_broken(an: Analysis, t: model.Type) -> bool:
    base = t.inner if isinstance(t, model.Optional) else t
    return isinstance(base, model.Record) and base.name in an.broken


def _walk(an: Analysis, sid: str, facts: StageFacts, start: model.Type) -> model.Type | None:
    """Follow the path's fields from `start`; the item type of the list at its end (an
    optional field on the way is fine: null maps as no items)."""
    assert facts.map is not None
    over = facts.map.node.over
    current = start
    for index, part in enumerate(over.parts[1:], start=1):
        base = current.inner if isinstance(current, model.Optional) else current
        read = ".".join(p.value for p in over.parts[:index])
        if not isinstance(base, model.Record):
            mapped = an.stages.get(read)
            an.error(
                "WF241",
                f"`{read}` is `{model.describe(current)}`, which has no fields",
                part.span,
                label=f"no field `{part.value}`",
                help=f"`{read}` is a mapped stage: its output is the list of its items' outputs; "
                f"`map {read}` runs over that list"
                if mapped is not None and mapped.map is not None and index == 1
                else f"`map` follows the fields of records; `{read}` is the end of the path",
            )
            return None
        found = base.field_named(part.value)
        if found is None:
            if base.name not in an.broken:
                unknown_field(an, "WF241", part, read, base)
            return None
        current = found.type
    base = current.inner if isinstance(current, model.Optional) else current
    if not isinstance(base, model.ListOf):
        an.error(
            "WF330",
            f"`map` runs over a list, but `{over.text}` is `{model.describe(current)}`",
            over.span,
            label=f"`{model.describe(current)}`",
            help="name a field of type `list[…]`, e.g. `map split.pages` with "
            "`output { pages: list[Page] }`",
        )
        return None
    return base.item


def unknown_field(an: Analysis, code: str, part: ast.Name, read: str, record: model.Record) -> None:
    """`code`: the path `read` so far has no field `part` in `record` (a map's `over`, a
    limit's `per`)."""
    names = [f.name for f in record.fields]
    declared = record.node.span if record.node is not None else None
    an.error(
        code,
        f"`{read}` has no field `{part.value}`",
        part.span,
        label=f"not a field of `{record.name}`",
        labels=(Label(span=declared, message=f"`{record.name}` is declared here"),)
        if declared is not None
        else (),
        help=did_you_mean(part.value, names)
        or ("its fields: " + ", ".join(f"`{n}`" for n in names) if names else None)
        or f"`{record.name}` has no fields",
    )


def _check_item_fits(an: Analysis, sid: str, facts: StageFacts, item: model.Type) -> None:
    """A declared input must be what an item is, or a part of it (fields it provides)."""
    assert facts.map is not None
    declared = facts.map.declared
    if declared is None:
        if isinstance(item, model.Record):
            facts.input = item  # the stage takes the item as it is
        return
    if _is_broken(an, declared) or _is_broken(an, item):
        return
    if model.assignable(item, declared):
        return
    spec = facts.node.inputs[0]
    over = facts.map.node.over
    given = model.describe(item)
    wanted = "declared input" if isinstance(spec, ast.RecordBody) else model.describe(declared)
    help = f"drop `input` to take each item as it is (`ctx.item` is `{given}`)"
    if isinstance(item, model.Record) and isinstance(declared, model.Record):
        missing = model.missing_fields(item, declared)
        if missing:
            fields = ", ".join(f"`{m}`" for m in missing)
            help = f"`{given}` does not provide {fields} as declared; {help}"
    an.error(
        "WF331",
        f"each item of `{over.text}` is `{given}`, which does not fit the input of `{sid}`",
        spec.span,
        label=f"{wanted}" if wanted == "declared input" else f"expects `{wanted}`",
        labels=(Label(span=over.span, message=f"items of `{given}`"),),
        help=help,
    )


def _check_readers(an: Analysis) -> None:
    """A stage cannot take a mapped stage's list as its whole input."""
    for sid, facts in an.stages.items():
        if facts.map is not None or facts.group is None or f"stage:{sid}" in an.broken:
            continue
        source: str | None = None
        if facts.input_from is not None:
            source = facts.input_from
        elif facts.input_source == "flow" and facts.group > 1:
            previous = an.groups[facts.group - 2]
            source = previous[0] if len(previous) == 1 else None
        if source is None or source not in an.stages:
            continue
        other = an.stages[source]
        if other.map is None or other.output is None:
            continue
        spec = facts.node.inputs[0]
        how = "`input from`" if facts.input_from is not None else "the flow"
        an.error(
            "WF421",
            f"stage `{sid}` takes its input from `{source}` through {how}, but `{source}` "
            "is mapped: its output is a list",
            spec.span,
            label="an input is a record",
            labels=(_map_label(other, source),),
            help=f"use `input none` with `needs {source}`; `ctx.{source}` is then "
            f"`{_python_list(other)}`",
        )


def _python_list(facts: StageFacts) -> str:
    gathered = facts.gathered()
    return model.describe(gathered) if gathered is not None else "a list"


def _check_workflow_output(an: Analysis) -> None:
    wf = an.workflow
    last = an.groups[-1]
    if wf is None or not wf.outputs or len(last) != 1:
        return
    facts = an.stages[last[0]]
    if facts.map is None or facts.output is None:
        return
    an.error(
        "WF422",
        f"the workflow output comes from `{last[0]}`, a mapped stage, whose output is a list",
        wf.outputs[0].span,
        label="a workflow output is a record",
        labels=(_map_label(facts, last[0]),),
        help=f"end the flow with a stage that gathers the items: `input none`, `needs "
        f"{last[0]}` (`ctx.{last[0]}` is `{_python_list(facts)}`)",
    )
