"""Stage `publish` (Publish) of workflow `approval`.

Created once by `wfc compile`; this file is yours and is never overwritten.
"""

from __future__ import annotations

from .._models import PublishOutput
from .._stages import PublishContext, PublishStage


class Publish(PublishStage):
    """Publish: the post goes live only with an editor's approval; `ctx.approval` is
    the signal's payload (`ApprovePayload`), or None when nobody answered in time."""

    def execute(self, ctx: PublishContext) -> PublishOutput:
        decision = ctx.approval
        if decision is None:
            return PublishOutput(published=False, note="no decision within 7 days: kept as a draft")
        if not decision.approved:
            why = f": {decision.note}" if decision.note else ""
            return PublishOutput(published=False, note=f"refused by {decision.by}{why}")
        return PublishOutput(
            published=True,
            url=f"https://blog.example.com/{ctx.draft.slug}",
            note=f"approved by {decision.by}",
        )
