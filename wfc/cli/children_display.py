"""How `wfc runs show` and `wfc runs list` link child runs and their parents.

A stage that runs another workflow (`wfc:child`) starts a child run per attempt; the
child keeps the run and stage that started it. `runs show` of a parent gives each such
stage a "child run" column (the last child, its status, and how many there were) and
says what a waiting one waits for; `runs show` of a child says "parent run … stage …"
under its header. The `--json` forms carry the same: `parent_run_id` and
`parent_stage_id` on every run, `child_run` and `child_runs` on every stage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfc.runtime.records import RunRecord, StageRecord

ChildLinks = dict[str, list["RunRecord"]]
"""A run's children by the stage that started them, oldest first."""


def child_links(children: list[RunRecord]) -> ChildLinks:
    """`children` (as `Persistence.children_of` lists them) by their parent stage."""
    links: ChildLinks = {}
    for child in children:
        links.setdefault(child.parent_stage_id or "", []).append(child)
    return links


def child_json(links: ChildLinks, stage_id: str) -> dict[str, Any]:
    """A stage's children for `runs show --json`: the last one and every id, oldest first."""
    mine = links.get(stage_id, [])
    last = mine[-1] if mine else None
    return {
        "child_run": None
        if last is None
        else {"run_id": last.id, "workflow_id": last.workflow_id, "status": last.status.value},
        "child_runs": [child.id for child in mine],
    }


def child_cell(links: ChildLinks, stage_id: str) -> str:
    """A stage's "child run" column: `<id> STATUS`, and how many ran when more than one."""
    mine = links.get(stage_id, [])
    if not mine:
        return ""
    last = mine[-1]
    more = f" (attempt {len(mine)})" if len(mine) > 1 else ""
    return f"{last.id} {last.status.value}{more}"


def parent_line(run: RunRecord) -> str | None:
    """`parent run … stage …` for a child run's header; None for any other run."""
    if run.parent_run_id is None:
        return None
    return f"parent run {run.parent_run_id} stage {run.parent_stage_id}"


def child_waits(stages: list[StageRecord]) -> dict[str, str]:
    """What each stage waiting for its child run waits for, by stage id."""
    waits: dict[str, str] = {}
    for stage in stages:
        state = stage.suspended_state or {}
        if stage.status.value == "SUSPENDED" and "child_run_id" in state:
            waits[stage.stage_id] = (
                f"waits for child run {state['child_run_id']} (attempt "
                f"{state.get('child_attempt', 1)}, since {state.get('since')})"
            )
    return waits


def parent_marker(run: RunRecord) -> str:
    """`wfc runs list`'s mark of a child run: `↳ <parent id>`; empty for others."""
    return "" if run.parent_run_id is None else f"↳ {run.parent_run_id}"
