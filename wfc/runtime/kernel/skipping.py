"""Which stages of a group do not run: their `when` is false, or all they need was skipped.

Decided when the group opens, in the transaction that opens it, from the run's
input and the outputs of earlier groups: a skipped stage gets a SKIPPED row
and a `stage:skipped` event and no job, so nothing is queued, leased or run
for it. A stage that needs nothing but skipped stages has nothing to work on
and is skipped with them; one that still has a dependency runs and sees None
for the skipped ones (the compiler makes it take them as optional).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wfc.plan import InputSource, PlanStage
from wfc.runtime.conditions import ConditionError, holds
from wfc.runtime.kernel.deps import Deps
from wfc.runtime.kernel.rows import load_outputs
from wfc.runtime.records import RunRecord, StageRecord, Status
from wfc.runtime.workflow import Workflow


@dataclass(frozen=True, slots=True)
class Skip:
    """The stage does not run, for `reason`."""

    reason: str


@dataclass(frozen=True, slots=True)
class BrokenCondition:
    """The stage's `when` cannot be evaluated (a plan built by hand): the run fails."""

    error: str


async def skip_decisions(
    deps: Deps,
    run: RunRecord,
    workflow: Workflow,
    group: int,
    earlier: Sequence[StageRecord],
    known: dict[str, Any] | None,
) -> dict[str, Skip | BrokenCondition]:
    """The stages of `group` that must not run, by stage id (the others run)."""
    decisions: dict[str, Skip | BrokenCondition] = {}
    skipped = {row.stage_id for row in earlier if row.status is Status.SKIPPED}
    for stage_id in workflow.group(group):
        stage = workflow.stage(stage_id)
        if stage is None:
            continue
        needed = _dependencies(workflow, stage, group)
        if needed and needed <= skipped:
            decisions[stage_id] = Skip(
                f"everything it needs was skipped ({', '.join(sorted(needed))})"
            )
            continue
        if stage.when is None:
            continue
        read = [row for row in earlier if row.stage_id in stage.when.roots()]
        outputs = await load_outputs(deps, read, known)
        try:
            if not holds(stage.when, run.input, outputs):
                decisions[stage_id] = Skip("its `when` condition is false")
        except ConditionError as error:
            decisions[stage_id] = BrokenCondition(
                f"Stage {stage_id}: its `when` condition cannot be evaluated: {error}"
            )
    return decisions


def _dependencies(workflow: Workflow, stage: PlanStage, group: int) -> set[str]:
    """The earlier stages whose outputs `stage` works on."""
    needed = set(stage.needs)
    if stage.input_from is not None:
        needed.add(stage.input_from)
    if stage.input_source is InputSource.FLOW and group > 1:
        needed |= set(workflow.group(group - 1))
    return needed
