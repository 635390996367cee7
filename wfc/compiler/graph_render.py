"""A Plan's flow as Mermaid or Graphviz DOT, for docs and reviews (`wfc graph`).

Edges follow execution: every stage of a group points to every stage of the
next. `needs` edges that skip a group are drawn dashed, so the data flow the
flow order does not show is still visible; optional needs (`needs x?`) are
drawn dashed and labelled `optional` wherever they point. A stage with a
`when` shows its condition under its name, so a reader sees which stages may
be skipped and why; a mapped stage shows what it maps over and how many items
run at once (`map over split.pages, ≤16`), and the stage its list comes from,
when that is not the group just before, points to it with a dashed `items` edge.
A stage's own queue and its fleet limits show on one line under its name
(`queue gpu, ≤2 at once per input.customer_id, ≤50/min shared openai`), and the
workflow's queue and schedules head the graph (a Mermaid title, a DOT label), so
a reviewer sees where and when the workflow runs beside what it does. A built-in
stage is a hexagon that says what it waits for (`⏸ sleep 1h`, `⏸ sleep until
input.publish_at`, `✉ wait for approve (2d → continue)`): no code runs there, and a
run may stay there long; a stage it sleeps until, when not the group just before,
points to it with a dashed `until` edge. A stage that
runs a child workflow is drawn as a subroutine (Mermaid `[[…]]`, a DOT double border)
with `↳ runs <workflow>` under its name.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

from wfc.plan import Condition, ItemFailure, MapSpec, Plan, PlanStage, RateLimit, ScheduleSpec

_INFIX = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in"}


def condition_text(c: Condition) -> str:
    """A condition as `.wf` text, parenthesised where needed (enum members show as strings)."""
    match c.op:
        case "field":
            return ".".join(c.path)
        case "literal":
            return json.dumps(c.value, ensure_ascii=False)
        case "len":
            return f"len({condition_text(c.args[0])})"
        case "not" if c.args[0].op == "in":
            left, right = (_operand(a, 1) for a in c.args[0].args)
            return f"{left} not in {right}"
        case "not":
            return "not " + _operand(c.args[0], 3)
        case "and" | "or":
            limit = 3 if c.op == "and" else 4
            return f" {c.op} ".join(_operand(a, limit) for a in c.args)
    left, right = (_operand(a, 1) for a in c.args)
    return f"{left} {_INFIX[c.op]} {right}"


def _level(c: Condition) -> int:
    """How loosely `c` binds: atoms 0, comparisons 1, `not` 2, `and` 3, `or` 4."""
    if c.op in ("field", "literal", "len"):
        return 0
    if c.op in _INFIX or (c.op == "not" and c.args[0].op == "in"):
        return 1
    return {"not": 2, "and": 3, "or": 4}[c.op]


def _operand(c: Condition, limit: int) -> str:
    """`c` in a place that takes looser-than-`limit` operands only in parentheses."""
    text = condition_text(c)
    return f"({text})" if _level(c) >= limit else text


def _skip_edges(plan: Plan) -> list[tuple[str, str]]:
    """Required `needs` edges from a stage more than one group back."""
    edges = []
    for stage in plan.stages:
        group = plan.execution_group(stage.id)
        for dep in stage.needs:
            if plan.execution_group(dep) < group - 1 and dep not in stage.optional_needs:
                edges.append((dep, stage.id))
    return edges


def _optional_edges(plan: Plan) -> list[tuple[str, str]]:
    """`needs x?` edges: the stage runs even when `x` was skipped."""
    return [(dep, stage.id) for stage in plan.stages for dep in stage.optional_needs]


def map_text(spec: MapSpec) -> str:
    """`map over split.pages, ≤16` (`, on failure continue` when it goes on past failures)."""
    text = f"map over {'.'.join(spec.over)}, ≤{spec.at_most}"
    if spec.on_item_failure is ItemFailure.CONTINUE:
        text += ", on failure continue"
    return text


_WINDOWS = {1000: "s", 60_000: "min", 3_600_000: "h", 86_400_000: "day"}


def rate_text(rate: RateLimit) -> str:
    """`≤50/min`, with ` shared openai` when it draws from a shared budget."""
    window = _WINDOWS.get(rate.window_ms, f"{rate.window_ms}ms")
    return f"≤{rate.max}/{window}" + (f" shared {rate.shared}" if rate.shared else "")


def limits_text(stage: PlanStage) -> str:
    """The stage's own queue and limits on one line, or `` when it has none."""
    parts = []
    if stage.queue is not None:
        parts.append(f"queue {stage.queue}")
    if stage.concurrency is not None:
        per = f" per {'.'.join(stage.concurrency.per)}" if stage.concurrency.per else ""
        parts.append(f"≤{stage.concurrency.max} at once{per}")
    if stage.rate is not None:
        parts.append(rate_text(stage.rate))
    return ", ".join(parts)


def schedule_text(schedule: ScheduleSpec) -> str:
    """`schedule nightly 0 6 * * * in Europe/Paris, catch up latest, overlap skip`."""
    return (
        f"schedule {schedule.name} {schedule.cron} in {schedule.timezone}, "
        f"catch up {schedule.catch_up}, overlap {schedule.overlap}"
    )


_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))


def duration_text(ms: int) -> str:
    """Milliseconds as the language writes them: `2d`, `1h30m`, `90s`, `250ms`."""
    if ms % 1000:
        return f"{ms}ms"
    text = ""
    for unit, size in _UNITS:
        if ms >= size:
            text += f"{ms // size}{unit}"
            ms %= size
    return text or "0s"


def builtin_text(stage: PlanStage) -> str:
    """`⏸ sleep 1h`, `⏸ sleep until input.publish_at`, `✉ wait for approve (2d → continue)`,
    or `` for a stage the user implements."""
    if stage.sleep is not None:
        if stage.sleep.until is not None:
            return "⏸ sleep until " + ".".join(stage.sleep.until)
        return f"⏸ sleep {duration_text(stage.sleep.duration_ms or 0)}"
    if stage.wait_for is not None:
        wait = stage.wait_for
        after = (
            f"{duration_text(wait.timeout_ms)} → {wait.on_timeout}"
            if wait.timeout_ms is not None
            else "no timeout"
        )
        return f"✉ wait for {wait.signal} ({after})"
    return ""


def _header(plan: Plan) -> list[str]:
    """The workflow's queue and schedules, one line each (none for a plan without them)."""
    lines = [f"queue {plan.queue}"] if plan.queue is not None else []
    return lines + [schedule_text(s) for s in plan.schedules]


def _map_edges(plan: Plan) -> list[tuple[str, str]]:
    """A mapped stage's list from a stage more than one group back (and not a need)."""
    return _read_edges(plan, lambda s: s.map.over if s.map is not None else None)


def _until_edges(plan: Plan) -> list[tuple[str, str]]:
    """A sleep's instant from a stage more than one group back (and not a need)."""
    return _read_edges(plan, lambda s: s.sleep.until if s.sleep is not None else None)


def _read_edges(
    plan: Plan, path_of: Callable[[PlanStage], tuple[str, ...] | None]
) -> list[tuple[str, str]]:
    edges = []
    for stage in plan.stages:
        path = path_of(stage)
        source = path[0] if path else "input"
        if source == "input" or source in stage.needs:
            continue
        if plan.execution_group(source) < plan.execution_group(stage.id) - 1:
            edges.append((source, stage.id))
    return edges


def _title(stage: PlanStage, line_break: str, escape: Callable[[str], str]) -> str:
    """The stage's name, and under it its `map` and its `when`, each escaped for the format."""
    lines = [_label(stage.name)]
    if stage.child is not None:
        lines.append(f"↳ runs {stage.child.workflow_id}")
    elif stage.builtin:
        lines.append(builtin_text(stage))
    if stage.map is not None:
        lines.append(map_text(stage.map))
    limits = limits_text(stage)
    if limits:
        lines.append(_label(limits))
    if stage.when is not None:
        lines.append("when " + _label(condition_text(stage.when)))
    return line_break.join(escape(line) for line in lines)


def _mermaid_escape(text: str) -> str:
    """Mermaid reads `<` and `>` in a label as HTML: write them as its entity codes."""
    return text.replace("<", "#lt;").replace(">", "#gt;")


def _flow_edges(plan: Plan) -> list[tuple[str, str]]:
    return [(a, b) for prev, nxt in itertools.pairwise(plan.groups) for a in prev for b in nxt]


def _label(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(plan: Plan) -> str:
    """`flowchart LR` with one subgraph per parallel group; a title when the workflow has
    a queue or schedules."""
    header = _header(plan)
    heading = ["---", "title: " + json.dumps(" · ".join(header), ensure_ascii=False), "---"]
    lines = [*(heading if header else []), "flowchart LR"]
    for index, group in enumerate(plan.groups, start=1):
        nodes = []
        for sid in group:
            stage = plan.stage(sid)
            shape = ('(["', '"])') if stage.kind == "async" else ('["', '"]')
            if stage.builtin:
                shape = ('{{"', '"}}')
            shape = ('[["', '"]]') if stage.child is not None else shape
            title = _title(stage, "<br/>", _mermaid_escape)
            nodes.append(f"{sid}{shape[0]}{title}{shape[1]}")
        if len(group) > 1:
            lines.append(f"  subgraph group{index} [group {index}]")
            lines.extend(f"    {n}" for n in nodes)
            lines.append("  end")
        else:
            lines.extend(f"  {n}" for n in nodes)
    lines.extend(f"  {a} --> {b}" for a, b in _flow_edges(plan))
    lines.extend(f"  {a} -.-> {b}" for a, b in _skip_edges(plan))
    lines.extend(f"  {a} -. optional .-> {b}" for a, b in _optional_edges(plan))
    lines.extend(f"  {a} -. items .-> {b}" for a, b in _map_edges(plan))
    lines.extend(f"  {a} -. until .-> {b}" for a, b in _until_edges(plan))
    return "\n".join(lines) + "\n"


def to_dot(plan: Plan) -> str:
    """A `digraph` with one cluster per parallel group."""
    lines = [f'digraph "{plan.workflow_id}" {{', "  rankdir=LR;", "  node [shape=box];"]
    header = _header(plan)
    if header:
        text = "\\n".join(_label(line) for line in header)
        lines += [f'  label="{text}";', "  labelloc=t;"]
    for index, group in enumerate(plan.groups, start=1):
        indent = "    " if len(group) > 1 else "  "
        if len(group) > 1:
            lines.append(f'  subgraph cluster_{index} {{ label="group {index}";')
        for sid in group:
            stage = plan.stage(sid)
            style = ", style=rounded" if stage.kind == "async" else ""
            if stage.builtin:
                style = ", shape=hexagon"
            style = ", peripheries=2" if stage.child is not None else style
            lines.append(f'{indent}"{sid}" [label="{_title(stage, chr(92) + "n", str)}"{style}];')
        if len(group) > 1:
            lines.append("  }")
    lines.extend(f'  "{a}" -> "{b}";' for a, b in _flow_edges(plan))
    lines.extend(f'  "{a}" -> "{b}" [style=dashed];' for a, b in _skip_edges(plan))
    lines.extend(
        f'  "{a}" -> "{b}" [style=dashed, label="optional"];' for a, b in _optional_edges(plan)
    )
    lines.extend(f'  "{a}" -> "{b}" [style=dashed, label="items"];' for a, b in _map_edges(plan))
    lines.extend(f'  "{a}" -> "{b}" [style=dashed, label="until"];' for a, b in _until_edges(plan))
    lines.append("}")
    return "\n".join(lines) + "\n"
