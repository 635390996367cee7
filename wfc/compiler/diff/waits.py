"""Rules for signals and built-in stages: what a run waiting, or about to wait, holds.

A run that opened a built-in stage holds a row SUSPENDED with what it waits for
and a timer queued for when the wait ends, both fixed as the stage opened. So a
new duration, `until` path, timeout or timeout policy is compatible: runs
waiting keep their timer, later ones take the new one. What a waiting run cannot
go on from is another kind of stage where it waits (a sleep that became a wait,
a user stage that became a sleep), or another signal: a run waiting for
`approve` would never be sent what the new plan waits for. Those are
`breaking_if_started` for the stage.

A signal is checked against the payload schema of the run's plan when it is sent,
and then kept; a wait takes it as it opens, and its readers read it as the wait's
output. So a payload schema that old payloads may not fit any more is
`breaking_if_started` for the stages that wait for that signal (what the wait
stored, or was sent and kept, has the old shape); one they all fit is compatible.
Removing a signal that a stage of the old plan waits for is `breaking_if_started`
for that stage: a run waiting there can no longer be sent it. Adding one is
compatible. Readers of a wait's output are judged by the output rules, as for
any stage.
"""

from __future__ import annotations

from wfc.compiler.diff.context import Ctx, names
from wfc.compiler.diff.fields import field_deltas
from wfc.compiler.diff.model import Verdict
from wfc.compiler.graph_render import builtin_text
from wfc.plan import Plan, PlanStage

BIS = Verdict.BREAKING_IF_STARTED
OK = Verdict.COMPATIBLE


def _waiting_for(plan: Plan, signal: str) -> list[str]:
    return [s.id for s in plan.stages if s.wait_for is not None and s.wait_for.signal == signal]


def workflow_signals(ctx: Ctx) -> None:
    """Signals added, removed, or whose payload changed."""
    before = {s.name: s for s in ctx.old.signals}
    after = {s.name: s for s in ctx.new.signals}
    for name in after:
        if name not in before:
            ctx.add(
                "signal-added",
                f"new signal `{name}`: runs in flight can be sent it once a stage waits for it",
                OK,
                path=("signal", name),
            )
    for name, old in before.items():
        waits = _waiting_for(ctx.old, name)
        if name not in after:
            ctx.add(
                "signal-removed",
                f"signal `{name}` removed"
                + (
                    f": a run waiting in {names(waits, 'or')} can no longer be sent it"
                    if waits
                    else ""
                ),
                BIS,
                affects=waits,
                path=("signal", name),
                anchors=[("signal", name), ("workflow",)],
            )
            continue
        deltas = field_deltas(old.payload_schema, after[name].payload_schema, closed=True)
        for delta in deltas:
            tail = (
                ""
                if delta.forward
                else f"; a payload sent before, or stored by {names(waits, 'or')}, may not fit"
            )
            ctx.add(
                "signal-payload-changed",
                f"payload of signal `{name}`: {delta.describe()}{tail}",
                OK if delta.forward else BIS,
                affects=waits,
                path=("signal", name, *delta.path),
                anchors=[("signal", name)],
            )


def _what(stage: PlanStage) -> str:
    if stage.sleep is not None:
        return "a sleep"
    if stage.wait_for is not None:
        return f"a wait for `{stage.wait_for.signal}`"
    return "a stage of yours"


def _shown(stage: PlanStage) -> str:
    """`sleep 1h`, `wait for approve (2d → continue)`: the graph's label without its symbol."""
    return builtin_text(stage).split(" ", 1)[1]


def stage_waits(ctx: Ctx, old: PlanStage, new: PlanStage) -> None:
    """A stage that became, or stopped being, a sleep or a wait, or waits for another signal
    (breaking for a run there); a new duration, path or timeout (compatible)."""
    sid = new.id
    kinds = (old.sleep is not None, old.wait_for is not None)
    if kinds != (new.sleep is not None, new.wait_for is not None):
        ctx.add(
            "stage-builtin-changed",
            f"`{sid}` is {_what(new)} now, was {_what(old)}: a run that started it waits "
            "(or ran) as the old kind of stage",
            BIS,
            stage_id=sid,
            affects=[sid],
            path=("stage", sid, "kind"),
            anchors=[("stage", sid, "sleep"), ("stage", sid, "wait"), ("stage", sid)],
        )
        return
    if old.sleep is not None and new.sleep is not None and old.sleep != new.sleep:
        ctx.add(
            "stage-sleep-changed",
            f"`{sid}` is `{_shown(new)}`, was `{_shown(old)}`: a run sleeping there keeps "
            "the wake-up time it fell asleep with; later ones take the new one",
            OK,
            stage_id=sid,
            path=("stage", sid, "sleep"),
        )
    if old.wait_for is None or new.wait_for is None or old.wait_for == new.wait_for:
        return
    if old.wait_for.signal != new.wait_for.signal:
        ctx.add(
            "stage-wait-signal-changed",
            f"`{sid}` waits for `{new.wait_for.signal}` now, was `{old.wait_for.signal}`: a run "
            "waiting there is waiting for the old signal",
            BIS,
            stage_id=sid,
            affects=[sid],
            path=("stage", sid, "wait"),
        )
    elif old.wait_for != new.wait_for:
        ctx.add(
            "stage-wait-timeout-changed",
            f"`{sid}` is `{_shown(new)}`, was `{_shown(old)}`: a run waiting there keeps "
            "the timeout it started waiting with; later ones take the new one",
            OK,
            stage_id=sid,
            path=("stage", sid, "wait"),
        )
