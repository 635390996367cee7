"""A Plan's flow as Mermaid or Graphviz DOT, for docs and reviews (`wfc graph`).

Edges follow execution: every stage of a group points to every stage of the
next. `needs` edges that skip a group are drawn dashed, so the data flow the
flow order does not show is still visible.
"""

from __future__ import annotations

import itertools

from wfc.plan import Plan


def _skip_edges(plan: Plan) -> list[tuple[str, str]]:
    """`needs` edges from a stage more than one group back."""
    edges = []
    for stage in plan.stages:
        group = plan.execution_group(stage.id)
        for dep in stage.needs:
            if plan.execution_group(dep) < group - 1:
                edges.append((dep, stage.id))
    return edges


def _flow_edges(plan: Plan) -> list[tuple[str, str]]:
    return [(a, b) for prev, nxt in itertools.pairwise(plan.groups) for a in prev for b in nxt]


def _label(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(plan: Plan) -> str:
    """`flowchart LR` with one subgraph per parallel group."""
    lines = ["flowchart LR"]
    for index, group in enumerate(plan.groups, start=1):
        nodes = []
        for sid in group:
            stage = plan.stage(sid)
            shape = ('(["', '"])') if stage.kind == "async" else ('["', '"]')
            nodes.append(f"{sid}{shape[0]}{_label(stage.name)}{shape[1]}")
        if len(group) > 1:
            lines.append(f"  subgraph group{index} [group {index}]")
            lines.extend(f"    {n}" for n in nodes)
            lines.append("  end")
        else:
            lines.extend(f"  {n}" for n in nodes)
    lines.extend(f"  {a} --> {b}" for a, b in _flow_edges(plan))
    lines.extend(f"  {a} -.-> {b}" for a, b in _skip_edges(plan))
    return "\n".join(lines) + "\n"


def to_dot(plan: Plan) -> str:
    """A `digraph` with one cluster per parallel group."""
    lines = [f'digraph "{plan.workflow_id}" {{', "  rankdir=LR;", "  node [shape=box];"]
    for index, group in enumerate(plan.groups, start=1):
        indent = "    " if len(group) > 1 else "  "
        if len(group) > 1:
            lines.append(f'  subgraph cluster_{index} {{ label="group {index}";')
        for sid in group:
            stage = plan.stage(sid)
            style = ", style=rounded" if stage.kind == "async" else ""
            lines.append(f'{indent}"{sid}" [label="{_label(stage.name)}"{style}];')
        if len(group) > 1:
            lines.append("  }")
    lines.extend(f'  "{a}" -> "{b}";' for a, b in _flow_edges(plan))
    lines.extend(f'  "{a}" -> "{b}" [style=dashed];' for a, b in _skip_edges(plan))
    lines.append("}")
    return "\n".join(lines) + "\n"
