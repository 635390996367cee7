"""Diff rules for child-workflow stages (`stage x runs <workflow>`, `wfc:child`).

A stage that runs another workflow now, or runs none any more, or runs a different
one, is breaking for the runs that started it: such a run holds a child run (or an
attempt of code) the new stage cannot go on from. What the child's own plan changes
is that workflow's diff (`wfc diff` of the child), except as it shows in the stage's
input and output schemas, which the stage rules compare as any stage's.
"""

from __future__ import annotations

from wfc.compiler.diff.context import Ctx
from wfc.compiler.diff.model import Verdict
from wfc.plan import PlanStage


def stage_child(ctx: Ctx, old: PlanStage, new: PlanStage) -> None:
    """The workflow a stage runs, before and after."""
    before = old.child.workflow_id if old.child is not None else None
    after = new.child.workflow_id if new.child is not None else None
    if before == after:
        return
    sid = new.id
    if before is not None and after is not None:
        code = "stage-child-workflow-changed"
        message = f"`{sid}` runs workflow `{after}` now, was `{before}`"
    elif after is not None:
        code = "stage-child-added"
        message = f"`{sid}` runs workflow `{after}` as a child now, was code"
    else:
        code = "stage-child-removed"
        message = f"`{sid}` is code now, ran workflow `{before}` as a child"
    ctx.add(
        code,
        message + ": a run that started it holds what the new stage cannot go on from",
        Verdict.BREAKING_IF_STARTED,
        stage_id=sid,
        affects=[sid],
        path=("stage", sid, "runs"),
        anchors=[("stage", sid, "runs"), ("stage", sid)],
    )
