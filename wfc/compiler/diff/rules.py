"""`diff_plans`: every rule, in order, over two plans of one workflow."""

from __future__ import annotations

from wfc.compiler.diff import children, fleet, flow, roles, waits
from wfc.compiler.diff.context import Ctx, SourceMap
from wfc.compiler.diff.model import PlanDiff, Verdict
from wfc.plan import Plan, PlanStage

BIS = Verdict.BREAKING_IF_STARTED
OK = Verdict.COMPATIBLE


def diff_plans(
    old: Plan,
    new: Plan,
    *,
    old_source: SourceMap | None = None,
    new_source: SourceMap | None = None,
) -> PlanDiff:
    """The changes from `old` to `new`, each judged for the runs in flight of `old`.

    Pure: it reads only the two plans (and, for locations, the source maps
    `wfc.compiler.diff.load_side` builds for `.wf` sources).
    """
    old_print, new_print = old.compute_fingerprint(), new.compute_fingerprint()
    result = PlanDiff(
        workflow_id=new.workflow_id, old_fingerprint=old_print, new_fingerprint=new_print
    )
    if old_print == new_print:
        return result
    ctx = Ctx(old, new, old_source, new_source)
    _workflow(ctx)
    renamed = flow.renames(ctx)
    renamed_from = {new_id: old_id for old_id, new_id in renamed.items()}
    for stage in new.stages:
        if stage.id not in ctx.old_ids:
            flow.added_stage(ctx, stage.id, renamed_from.get(stage.id))
            roles.new_field_reads(ctx, stage.id)
        else:
            _stage(ctx, stage.id)
    for stage in old.stages:
        if stage.id not in ctx.new_ids:
            flow.removed_stage(ctx, stage.id, renamed.get(stage.id))
    if not ctx.changes:
        ctx.add(
            "annotations-changed",
            "the plans differ only where no run reads them: descriptions and titles inside "
            "the schemas, or the order of names in a list (`needs`, a parallel group)",
            OK,
            path=("workflow",),
        )
    result.changes.extend(ctx.changes)
    return result


def _workflow(ctx: Ctx) -> None:
    old, new = ctx.old, ctx.new
    if old.workflow_id != new.workflow_id:
        ctx.add(
            "workflow-id-changed",
            f"the workflow is `{new.workflow_id}`, was `{old.workflow_id}`: runs are found by "
            "their workflow's id, so runs in flight of the old one are not runs of this one",
            Verdict.BREAKING,
            path=("workflow",),
        )
    if old.name != new.name:
        ctx.add(
            "workflow-name-changed",
            f"the workflow's name is {new.name!r}, was {old.name!r}",
            OK,
            path=("workflow",),
        )
    if old.description != new.description:
        ctx.add(
            "workflow-description-changed",
            "the workflow's description changed",
            OK,
            path=("workflow",),
        )
    roles.workflow_input(ctx)
    roles.workflow_output(ctx)
    fleet.workflow_fleet(ctx)
    waits.workflow_signals(ctx)


def _stage(ctx: Ctx, stage_id: str) -> None:
    old, new = ctx.old_stage(stage_id), ctx.new_stage(stage_id)
    _settings(ctx, old, new)
    fleet.stage_fleet(ctx, old, new)
    waits.stage_waits(ctx, old, new)
    children.stage_child(ctx, old, new)
    flow.order(ctx, stage_id)
    _kind_and_map(ctx, old, new)
    if (old.map is None) == (new.map is None):
        flow.input_source(ctx, stage_id)
        roles.stage_input(ctx, stage_id)
        roles.stage_output(ctx, stage_id)
    roles.stage_config(ctx, stage_id)
    _needs(ctx, old, new)
    _when(ctx, old, new)
    roles.new_field_reads(ctx, stage_id)


_SETTINGS = (
    ("implementation", "stage-implementation-changed", "implementation", "its class"),
    ("name", "stage-name-changed", "name", "its name"),
    ("description", "stage-description-changed", "description", "its description"),
    ("retry", "stage-retry-changed", "retry", "its retry policy (from its next failure on)"),
    ("timeout_ms", "stage-timeout-changed", "timeout", "its timeout (from its next attempt on)"),
    (
        "poll",
        "stage-poll-changed",
        "poll",
        "its poll policy (a stage suspended already keeps the "
        "interval and deadline it suspended with)",
    ),
    (
        "priority",
        "stage-priority-changed",
        "priority",
        "its priority (for jobs queued from now on)",
    ),
)


def _settings(ctx: Ctx, old: PlanStage, new: PlanStage) -> None:
    """What only says how a stage is run, not what it reads or writes."""
    for attribute, code, key, what in _SETTINGS:
        before, after = getattr(old, attribute), getattr(new, attribute)
        if before == after:
            continue
        shown = (
            f": {_show(before, attribute)} → {_show(after, attribute)}"
            if attribute in ("implementation", "name", "timeout_ms", "priority")
            else ""
        )
        ctx.add(
            code,
            f"`{new.id}` changes {what}{shown}",
            OK,
            stage_id=new.id,
            path=("stage", new.id, key),
        )


def _show(value: object, attribute: str) -> str:
    if value is None:
        return "none"
    if attribute == "timeout_ms" and isinstance(value, int):
        return _duration(value)
    return repr(value) if isinstance(value, str) else str(value)


def _duration(ms: int) -> str:
    """Milliseconds as the language writes a duration: `90s`, `2m`, `1h30m`, `250ms`."""
    if ms % 1000:
        return f"{ms}ms"
    seconds, text = ms // 1000, ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            text += f"{seconds // size}{unit}"
            seconds %= size
    return text or "0s"


def _kind_and_map(ctx: Ctx, old: PlanStage, new: PlanStage) -> None:
    sid = new.id
    if old.kind != new.kind:
        ctx.add(
            "stage-kind-changed",
            f"`{sid}` is {new.kind} now, was {old.kind}: a run that started it may hold a "
            "suspended state or an attempt the other kind cannot go on from",
            BIS,
            stage_id=sid,
            affects=[sid],
            path=("stage", sid, "kind"),
        )
    here = ("stage", sid, "map")
    if old.map is None and new.map is not None:
        ctx.add(
            "stage-map-added",
            f"`{sid}` now runs once per item of `{'.'.join(new.map.over)}`: a run that started "
            "it ran it once, and its stored output is not a list",
            BIS,
            stage_id=sid,
            affects=[sid],
            path=here,
        )
    elif old.map is not None and new.map is None:
        ctx.add(
            "stage-map-removed",
            f"`{sid}` no longer runs per item: a run that started it holds items and a "
            "gathered list",
            BIS,
            stage_id=sid,
            affects=[sid],
            path=here,
        )
    elif old.map is not None and new.map is not None:
        if old.map.over != new.map.over:
            ctx.add(
                "stage-map-source-changed",
                f"`{sid}` maps over `{'.'.join(new.map.over)}`, was `{'.'.join(old.map.over)}`: "
                "a run that started it made its items from the old list",
                BIS,
                stage_id=sid,
                affects=[sid],
                path=here,
            )
        if old.map.on_item_failure != new.map.on_item_failure:
            ctx.add(
                "stage-map-policy-changed",
                f"`{sid}` goes `on failure {new.map.on_item_failure}`, was "
                f"`{old.map.on_item_failure}`: a started map decided its failed items, and "
                "gathers its results in the shape of the old policy",
                BIS,
                stage_id=sid,
                affects=[sid],
                path=here,
            )
        if old.map.at_most != new.map.at_most:
            ctx.add(
                "stage-map-limit-changed",
                f"`{sid}` runs at most {new.map.at_most} items at once, was {old.map.at_most} "
                "(a map already running keeps its pace; reruns take the new one)",
                OK,
                stage_id=sid,
                path=here,
            )


def _needs(ctx: Ctx, old: PlanStage, new: PlanStage) -> None:
    sid = new.id
    required_old = set(old.needs) - set(old.optional_needs)
    required_new = set(new.needs) - set(new.optional_needs)
    added = [n for n in new.needs if n not in old.needs]
    removed = [n for n in old.needs if n not in new.needs]
    hardened = [n for n in new.needs if n in old.needs and n in required_new - required_old]
    softened = [n for n in new.needs if n in old.needs and n in required_old - required_new]
    for need in added:
        ctx.add(
            "stage-needs-added",
            f"`{sid}` now needs `{need}`: a run that started it ran it without",
            BIS,
            stage_id=sid,
            affects=[sid],
            path=("stage", sid, "needs", need),
        )
    for need in hardened:
        ctx.add(
            "stage-need-made-required",
            f"`{sid}` now needs `{need}` (was `{need}?`): a run that started it may have run it "
            "with the need skipped",
            BIS,
            stage_id=sid,
            affects=[sid],
            path=("stage", sid, "needs", need),
        )
    for need in removed:
        ctx.add(
            "stage-needs-removed",
            f"`{sid}` no longer needs `{need}`",
            OK,
            stage_id=sid,
            path=("stage", sid, "needs", need),
            anchors=[("stage", sid, "needs", need), ("stage", sid, "needs")],
        )
    for need in softened:
        ctx.add(
            "stage-need-made-optional",
            f"`{sid}` takes `{need}` as optional now (`{need}?`)",
            OK,
            stage_id=sid,
            path=("stage", sid, "needs", need),
        )


def _when(ctx: Ctx, old: PlanStage, new: PlanStage) -> None:
    if old.when == new.when:
        return
    sid = new.id
    if old.when is None:
        code, what = "stage-when-added", "now has a `when`"
    elif new.when is None:
        code, what = "stage-when-removed", "no longer has a `when`"
    else:
        code, what = "stage-when-changed", "has another `when`"
    ctx.add(
        code,
        f"`{sid}` {what}: a run that has opened its group decided already whether it runs "
        "or is skipped",
        BIS,
        stage_id=sid,
        affects=[sid],
        path=("stage", sid, "when"),
    )
