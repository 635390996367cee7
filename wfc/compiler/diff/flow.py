"""Rules over the flow: stages added, removed, moved between groups, and where inputs come from.

The kernel moves a run on by its rows: when no row is active it opens the
group after the highest-numbered one that has rows, creating a row for each
of its stages at once. A run that moves to a new plan keeps its rows as they
are, numbered by the old plan's groups, so the new plan must be able to go on
from them: a stage placed at or before a group the run has already opened
never gets a row, and so never runs, and a started stage must keep its
group's number.
"""

from __future__ import annotations

from wfc.compiler.diff.context import Ctx, names
from wfc.compiler.diff.model import Verdict
from wfc.compiler.diff.roles import required_config
from wfc.compiler.diff.values import strip
from wfc.plan import InputSource, Plan


def added_stage(ctx: Ctx, stage_id: str, renamed_from: str | None) -> None:
    """A new stage runs in runs that have not yet opened its group; the others are past it."""
    group = ctx.new_group[stage_id]
    passed = [sid for sid in ctx.common if ctx.new_group[sid] >= group]
    hint = f" (renamed from `{renamed_from}`?)" if renamed_from else ""
    if passed:
        message = (
            f"new stage `{stage_id}`{hint} in group {group}: a run that has started "
            f"{names(passed, 'or')} is past its place and would never run it"
        )
    else:
        message = f"new stage `{stage_id}`{hint}: runs in flight run it when they reach it"
    verdict, holding = ctx.holding_rows(passed) if passed else (Verdict.COMPATIBLE, frozenset())
    ctx.add(
        "stage-added",
        message,
        verdict,
        stage_id=stage_id,
        affects=holding,
        path=("stage", stage_id),
    )
    required = required_config(ctx.new_stage(stage_id).config_schema)
    if required:
        ctx.add(
            "stage-added-config-required",
            f"new stage `{stage_id}` needs config without a default ({names(required)}): runs "
            "in flight were created without it, so the stage would fail on its config",
            Verdict.BREAKING,
            stage_id=stage_id,
            path=("stage", stage_id, "config"),
        )


def removed_stage(ctx: Ctx, stage_id: str, renamed_to: str | None) -> None:
    """A run that started a stage holds its row, output and job, which the new plan does not
    know; one that has not started it never will, and loses nothing."""
    hint = f" (renamed to `{renamed_to}`?)" if renamed_to else ""
    verdict, holding = ctx.holding_rows([stage_id])
    ctx.add(
        "stage-removed",
        f"stage `{stage_id}` removed{hint}: a run that holds its row holds a job or an "
        "output of it, which the new plan does not know",
        verdict,
        stage_id=stage_id,
        affects=holding,
        path=("stage", stage_id),
    )


def renames(ctx: Ctx) -> dict[str, str]:
    """Removed stage → added stage with the same kind and schemas, when exactly one fits."""
    removed = [sid for sid in ctx.old.stage_ids() if sid not in ctx.new_ids]
    added = [sid for sid in ctx.new.stage_ids() if sid not in ctx.old_ids]

    def shape(plan: Plan, sid: str) -> tuple[object, ...]:
        stage = plan.stage(sid)
        return (stage.kind, strip(stage.input_schema), strip(stage.output_schema), stage.map)

    found = {}
    for old_id in removed:
        fits = [new_id for new_id in added if shape(ctx.old, old_id) == shape(ctx.new, new_id)]
        if len(fits) == 1:
            found[old_id] = fits[0]
    return found


def order(ctx: Ctx, stage_id: str) -> None:
    """Where a stage of both plans runs now, for a run that has started it.

    Stages that ran after it and now run before or beside it: a run that started it but
    not them has opened their group already, and would never run them. A run keeps its
    rows as they are, numbered by the old plan's groups, and the kernel reads where a run
    stands from those numbers (which group opens next, whether a stage is alone in its
    group, what a rerun resets): so a started stage must keep its group's number.
    """
    old_group = ctx.old_group.__getitem__
    new_group = ctx.new_group.__getitem__
    overtaken = [
        other
        for other in ctx.common
        if other != stage_id
        and new_group(other) <= new_group(stage_id)
        and old_group(other) > old_group(stage_id)
    ]
    if overtaken:
        same = [o for o in overtaken if new_group(o) == new_group(stage_id)]
        where = (
            "beside" if len(same) == len(overtaken) else "before or beside" if same else "before"
        )
        they = "it" if len(overtaken) == 1 else "them"
        verb = "runs" if len(overtaken) == 1 else "run"
        verdict, holding = ctx.holding_rows([stage_id])
        ctx.add(
            "stage-order-changed",
            f"{names(overtaken)} ran after `{stage_id}` and now {verb} {where} it: a run that "
            f"holds a row of `{stage_id}` but has not started {they} would never run {they}",
            verdict,
            stage_id=stage_id,
            affects=holding,
            unless_started=overtaken,
            path=("flow", stage_id),
        )
    was, now = old_group(stage_id), new_group(stage_id)
    if was != now and not _covered(ctx, stage_id):
        verdict, holding = ctx.holding_rows([stage_id])
        ctx.add(
            "stage-renumbered",
            f"`{stage_id}` runs in group {now}, was group {was}: a run that holds its row "
            f"keeps it numbered for group {was}, and the kernel reads where a run stands "
            "from those numbers",
            verdict,
            stage_id=stage_id,
            affects=holding,
            path=("flow", stage_id),
        )
        return
    before = _place(ctx, ctx.old_group, stage_id)
    after = _place(ctx, ctx.new_group, stage_id)
    if before != after and not overtaken:
        moves = f"moves from group {was} to group {now}" if was != now else f"stays in group {now}"
        company = ""
        if before[1] != after[1]:
            company = f", {_company(after[1])} (was {_company(before[1])})"
        elif before[0] != after[0]:
            company = f", after {names(after[0])}" if after[0] else ", now first"
        ctx.add(
            "stage-regrouped",
            f"`{stage_id}` {moves}{company}",
            Verdict.COMPATIBLE,
            stage_id=stage_id,
            path=("flow", stage_id),
        )


def _covered(ctx: Ctx, stage_id: str) -> bool:
    """Whether a run that started `stage_id` is harmed already by a stage added at or before
    its group (`stage-added` names it), or removed from a group before its old one (a run
    that started it started that one)."""
    new_place, old_place = ctx.new_group[stage_id], ctx.old_group[stage_id]
    added = any(ctx.new_group[s] <= new_place for s in ctx.new_ids - ctx.old_ids)
    removed = any(ctx.old_group[s] < old_place for s in ctx.old_ids - ctx.new_ids)
    return added or removed


def _place(
    ctx: Ctx, groups: dict[str, int], stage_id: str
) -> tuple[frozenset[str], frozenset[str]]:
    """The common stages before `stage_id`, and those beside it, by `groups`."""
    group = groups[stage_id]
    before = frozenset(s for s in ctx.common if groups[s] < group)
    beside = frozenset(s for s in ctx.common if s != stage_id and groups[s] == group)
    return before, beside


def _company(beside: frozenset[str]) -> str:
    return f"beside {names(beside)}" if beside else "on its own"


def binding(plan: Plan, stage_id: str) -> tuple[str, frozenset[str]]:
    """Where the stage's input comes from at run time."""
    stage = plan.stage(stage_id)
    if stage.input_source is InputSource.ITEM:
        return "item", frozenset()
    if stage.input_source is InputSource.NONE:
        return "none", frozenset()
    if stage.input_source is InputSource.STAGE:
        return "stage", frozenset([stage.input_from or ""])
    group = plan.execution_group(stage_id)
    if group == 1:
        return "input", frozenset()
    previous = plan.groups[group - 2]
    return ("group" if len(previous) > 1 else "stage"), frozenset(previous)


def describe_binding(found: tuple[str, frozenset[str]]) -> str:
    """A binding in words."""
    kind, ids = found
    if kind == "item":
        return "one item of its map"
    if kind == "none":
        return "nothing (`input none`)"
    if kind == "input":
        return "the workflow input"
    if kind == "stage":
        return f"the output of {names(ids)}"
    return f"the outputs of {names(ids)} (a parallel group)"


def input_source(ctx: Ctx, stage_id: str) -> None:
    """A started stage consumed the input its old place gave it."""
    before, after = binding(ctx.old, stage_id), binding(ctx.new, stage_id)
    if before == after or "item" in (before[0], after[0]):
        return  # a map added or removed is a change of its own
    ctx.add(
        "stage-input-source-changed",
        f"`{stage_id}` took its input from {describe_binding(before)}, now from "
        f"{describe_binding(after)}: a run that started it ran it on the old one",
        Verdict.BREAKING_IF_STARTED,
        stage_id=stage_id,
        affects=[stage_id],
        path=("stage", stage_id, "input"),
        anchors=[("stage", stage_id, "input"), ("flow", stage_id)],
    )
